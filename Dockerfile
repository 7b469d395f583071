# One image for Lambda and for Docker (EC2, ECS, a laptop); its one command is
# `python -m functions.api.serve`: the Lambda runtime client when AWS_LAMBDA_RUNTIME_API is set
# (Lambda sets it), uvicorn on 0.0.0.0:${PORT:-8000} otherwise.
#
#   docker build -t ml-api:latest .                          # with a demo churn model baked in
#   docker run -p 8000:8000 -e API_KEYS='[{"name": "me", "scopes": ["predict", "read"],
#              "sha256": "<sha256 hex of your key>"}]' ml-api:latest
#   docker build --build-arg DEMO_MODEL=false -t ml-api:prod .   # production: no baked model;
#              # TRACKING_URI=dynamodb://... and ARTIFACT_URI=s3://... come from the environment
#
# The image has no default API key: without API_KEYS (or API_KEYS_SECRET_ARN) every route but
# /health and /ready answers 401.
#
# BASE_IMAGE must provide `python3` with the venv module (python:3.12-slim does; `make
# image-check` builds on a Debian stand-in made with debootstrap, whose python3 lives in
# /usr/bin rather than /usr/local/bin). Both stages use it, so the virtual environment's
# interpreter link resolves in the final stage.
ARG BASE_IMAGE=python:3.12-slim

FROM ${BASE_IMAGE} AS builder

SHELL ["/bin/sh", "-eu", "-c"]
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python3 -m venv /opt/venv
ENV PATH="/opt/venv/bin:${PATH}"

# Runtime dependencies only (xgboost-cpu, onnxruntime; no scikit-learn, no dev tools): their own layer, reused
# while requirements.txt is unchanged.
COPY requirements.txt /src/requirements.txt
RUN python -m pip install --no-cache-dir --requirement /src/requirements.txt

# The tracking SDK as an installed package (the `tracking` command included); the app's own
# packages are copied to /var/task in the final stage.
COPY pyproject.toml README.md /src/
COPY tracking /src/tracking
# Test suites inside installed packages (scipy's, numpy's, ...) are never imported by the app:
# removed before compiling, they are ~40 MB of the virtual environment (`make image-check`
# prints its size).
RUN python -m pip install --no-cache-dir --no-deps /src \
    && find /opt/venv/lib -depth -type d -path '*/site-packages/*' \
        -name tests -exec rm -rf {} + \
    && python -m compileall -q -j 0 /opt/venv

# The demo models: trained, registered and promoted into the embedded store at the path the final
# stage serves them from: churn (XGBoost) and churn-baseline (scikit-learn, served as ONNX).
# DEMO_MODEL=false leaves the store empty (production images read DynamoDB and S3, named by
# TRACKING_URI and ARTIFACT_URI at run time). The training-only libraries (requirements-train.txt:
# scikit-learn, skl2onnx, onnx, matplotlib for the reports) go to /opt/train, on PYTHONPATH for the
# training commands only: the final stage copies /opt/venv only, so the image serves the baseline
# with onnxruntime alone.
ARG DEMO_MODEL=true
COPY requirements-train.txt /src/requirements-train.txt
COPY models /src/models
WORKDIR /src
RUN mkdir -p /var/task/.tracking \
    && if [ "${DEMO_MODEL}" = "true" ]; then \
        grep -v '^-r' /src/requirements-train.txt >/tmp/train-only.txt; \
        python -m pip install --no-cache-dir --target /opt/train \
            --constraint /src/requirements.txt --requirement /tmp/train-only.txt; \
        export TRACKING_URI=sqlite:////var/task/.tracking/tracking.db \
            ARTIFACT_URI=file:///var/task/.tracking/artifacts \
            TRACKING_ACTOR=image-build MPLBACKEND=Agg MPLCONFIGDIR=/tmp/matplotlib; \
        PYTHONPATH=/opt/train python -m models.churn.train --rows 20000 --promote production \
            --no-progress; \
        PYTHONPATH=/opt/train python -m models.churn_baseline.train --rows 20000 \
            --promote production; \
        rm -rf /src/.tracking /tmp/matplotlib /opt/train /tmp/train-only.txt; \
    fi


FROM ${BASE_IMAGE} AS runtime

SHELL ["/bin/sh", "-eu", "-c"]
# A fixed numeric id, so orchestrators can check runAsNonRoot. Lambda runs the image as its own
# user and ignores USER; everything the app reads is world-readable.
RUN groupadd --gid 10001 app \
    && useradd --uid 10001 --gid app --no-log-init --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin app

ENV PATH="/opt/venv/bin:${PATH}" \
    VIRTUAL_ENV=/opt/venv \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    LAMBDA_TASK_ROOT=/var/task \
    TRACKING_URI=sqlite:////var/task/.tracking/tracking.db \
    ARTIFACT_URI=file:///var/task/.tracking/artifacts \
    PORT=8000

COPY --from=builder /opt/venv /opt/venv
WORKDIR /var/task
COPY functions ./functions
COPY models ./models
# Bytecode compiled once here, checked by hash rather than by timestamp: the code folder is
# read-only at run time (always on Lambda), so nothing could be cached later.
RUN python -m compileall -q -j 0 --invalidation-mode unchecked-hash /var/task
# The embedded demo store belongs to the app user: SQLite in WAL mode writes its -wal and -shm
# files beside the database, even to read. (On Lambda /var/task is read-only: set TRACKING_URI
# to DynamoDB there; the model cache defaults to a folder under /tmp, writable everywhere.)
COPY --from=builder --chown=10001:10001 /var/task/.tracking ./.tracking

USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as r; r.urlopen('http://127.0.0.1:%s/health' % os.environ.get('PORT', '8000'), timeout=4)"]
CMD ["python", "-m", "functions.api.serve"]
