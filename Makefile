# `make run` and `make test` do all the set-up themselves on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip
# pytest workers: the machine has 2 cores.
PYTEST_WORKERS ?= 2

.PHONY: run test lint typecheck install install-dev bench clean image-check load

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

# `make run` trains its demo models, so the local venv carries the training dependencies too
# (requirements-train.txt includes requirements.txt); the image installs requirements.txt only.
$(VENV)/.runtime-installed: $(BIN)/python requirements.txt requirements-train.txt pyproject.toml
	$(PIP) install --quiet -r requirements-train.txt
	$(PIP) install --quiet --no-deps --editable .
	touch $@

$(VENV)/.dev-installed: $(VENV)/.runtime-installed requirements-dev.txt
	$(PIP) install --quiet -r requirements-dev.txt
	touch $@

install: $(VENV)/.runtime-installed
install-dev: $(VENV)/.dev-installed

PORT ?= 8000
# make run's models (local_setup trains both when they have no production version).
SERVED_MODELS ?= churn,churn-baseline,rag

run: install
	$(BIN)/tracking init
	$(BIN)/python -m functions.api.local_setup
	API_KEYS="$$(cat .tracking/api_keys.json)" HOST=127.0.0.1 PORT=$(PORT) \
		SERVED_MODELS="$(SERVED_MODELS)" $(BIN)/python -m functions.api.serve

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install-dev
	$(BIN)/mypy

test: lint typecheck
	$(BIN)/pytest -n $(PYTEST_WORKERS) -q

bench: install-dev
	$(BIN)/python bench/tracking_bench.py

# Headless locust run (tests/load_test.py) against `python -m functions.api.serve` on 127.0.0.1,
# on a throw-away store with make run's model; prints req/s and p50/p95/p99 per endpoint and fails
# on any failed request. Locust has its own venv (gevent, a pytest plugin): created once, ~10 s.
LOAD_USERS ?= 16
LOAD_SECONDS ?= 60
LOCUST_VENV := $(VENV)/locust

$(LOCUST_VENV)/.installed: $(BIN)/python requirements-load.txt
	$(BIN)/python -m venv $(LOCUST_VENV)
	$(LOCUST_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(LOCUST_VENV)/bin/python -m pip install --quiet -r requirements-load.txt
	touch $@

load: install $(LOCUST_VENV)/.installed
	$(BIN)/python bench/load_run.py --users $(LOAD_USERS) --seconds $(LOAD_SECONDS) \
		--locust $(LOCUST_VENV)/bin/locust

# Builds the Dockerfile without a daemon (buildah, chroot isolation, vfs; on a debootstrap stand-in
# base) and runs the image's command as Lambda and as a server. Several minutes; needs root to
# install buildah/debootstrap when missing. See deploy/image_check.sh.
image-check:
	bash deploy/image_check.sh

clean:
	rm -rf $(VENV) .tracking .pytest_cache .mypy_cache .ruff_cache

# ---- deployment proofs (template.yaml, samconfig.toml, layers/) ----------------------------
# aws-sam-cli pins versions that clash with ours, so it lives in its own virtual environment
# (created once under .venv/, where ruff and git already look away: ~45-55 s). `sam validate
# --lint` runs cfn-lint on the SAM-transformed template; it reads no account, but botocore wants
# a region and some key to build its session.
SAM_VENV := $(VENV)/sam-cli
SAM_CLI_VERSION := 1.170.0

$(SAM_VENV)/.installed:
	$(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(SAM_VENV)/bin/python -m pip install --quiet aws-sam-cli==$(SAM_CLI_VERSION)
	touch $@

.PHONY: sam-validate deploy-check
sam-validate: $(SAM_VENV)/.installed
	AWS_ACCESS_KEY_ID=offline AWS_SECRET_ACCESS_KEY=offline AWS_DEFAULT_REGION=us-east-1 \
	SAM_CLI_TELEMETRY=0 \
		$(SAM_VENV)/bin/sam validate --lint --template template.yaml --region us-east-1

# cfn-lint, the key-schema / IAM / samconfig / ECS / layer tests, then sam validate --lint.
deploy-check: install-dev sam-validate
	$(BIN)/cfn-lint template.yaml
	$(BIN)/pytest -q tests/deploy/test_template.py tests/deploy/test_samconfig.py \
		tests/deploy/test_ecs.py tests/deploy/test_layer.py

# ---- monitoring proofs (deploy/monitoring/, tests/deploy/test_monitoring.py) ----------------
# promtool from the distribution's prometheus package, unpacked into the venv (~20 MB download).
$(BIN)/promtool: deploy/install_promtool.sh | $(BIN)/python
	bash deploy/install_promtool.sh $(BIN)

.PHONY: promtool
promtool: $(BIN)/promtool
test: promtool
