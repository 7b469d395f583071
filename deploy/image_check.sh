#!/usr/bin/env bash
# `make image-check`: build the Dockerfile without a Docker daemon and run the built image's
# command in both of its modes, as Lambda and as a server.
#
#   1. buildah and debootstrap from Debian's packages (installed when missing; needs root).
#   2. A stand-in base image: no registry image can be pulled here, so Debian bookworm (minbase,
#      python3 + python3-venv) made with debootstrap and imported with buildah. It is passed as
#      BASE_IMAGE; the Dockerfile's default stays python:3.12-slim. Kept between runs.
#   3. `buildah build --isolation chroot` on vfs storage (no daemon, no overlay, no user
#      namespaces), docker format (HEALTHCHECK and SHELL are not in the OCI image config).
#   4. The image's own CMD, run with `buildah run` as the image's USER:
#      - Lambda mode: AWS_LAMBDA_RUNTIME_API points at tests/deploy/runtime_api.py (a local
#        Runtime API emulator), which feeds the canned events and checks each answer is a 200;
#      - server mode: HOST=127.0.0.1, PORT=<free port>; /health polled, then /predict/churn;
#        the image's HEALTHCHECK command is run inside the container too.
#   5. The image size and the size of its virtual environment (/opt/venv).
#
# Both modes serve every demo model (SERVED_MODELS, default churn,churn-baseline; override with
# IMAGE_CHECK_SERVED_MODELS), so the cold start includes loading and warming each of them.
#
# Everything lives under IMAGE_CHECK_DIR (default /var/tmp/ml-api-image-check), storage included,
# so the machine's own container storage is never touched. IMAGE_CHECK_BUILD=0 re-checks the image
# built last time instead of building again. Every wait is bounded, and the
# processes this script starts are ended by their own ids on exit.
set -euo pipefail

cd "$(dirname "$0")/.."
WORK=${IMAGE_CHECK_DIR:-/var/tmp/ml-api-image-check}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
BASE=localhost/ml-api-base:bookworm
IMAGE=localhost/ml-api:check
PYTHON=${PYTHON:-python3}
SERVED=${IMAGE_CHECK_SERVED_MODELS:-churn,churn-baseline}
BUILDAH=(buildah --root "$WORK/storage" --runroot "$WORK/run" --storage-driver vfs)
export BUILDAH_ISOLATION=chroot STORAGE_DRIVER=vfs

step() { printf '\n== %s\n' "$*"; }
elapsed() { echo $(($(date +%s) - $1)); }

PIDS=()
CONTAINERS=()
cleanup() {
    local pid ctr
    for pid in "${PIDS[@]}"; do
        # Each background job is started with setsid: its id is its process group's.
        kill -- "-$pid" 2>/dev/null || kill "$pid" 2>/dev/null || true
    done
    for ctr in "${CONTAINERS[@]}"; do
        "${BUILDAH[@]}" rm "$ctr" >/dev/null 2>&1 || true
    done
}
trap cleanup EXIT

# -- 1. tools -------------------------------------------------------------------------------------
if ! command -v buildah >/dev/null || ! command -v debootstrap >/dev/null; then
    step "installing buildah and debootstrap (Debian packages)"
    if [ "$(id -u)" != 0 ]; then
        echo "image-check: buildah and debootstrap are missing and this is not root" >&2
        exit 1
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq buildah debootstrap >/dev/null
fi
buildah --version
mkdir -p "$WORK"

# -- 2. the stand-in base image -------------------------------------------------------------------
if ! "${BUILDAH[@]}" inspect --type image "$BASE" >/dev/null 2>&1; then
    step "stand-in base image $BASE: debootstrap bookworm minbase + python3 + python3-venv"
    started=$(date +%s)
    rootfs="$WORK/base-rootfs"
    rm -rf "$rootfs"
    debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
        bookworm "$rootfs" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 \
        || { tail -20 "$WORK/debootstrap.log"; exit 1; }
    # The stand-in trusts what this machine trusts (networks that intercept TLS add their CA
    # there) and uses this machine's pip configuration (index, certificates), so the build's
    # `pip install` reaches PyPI as the host does. A real base image needs neither.
    cp /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/ca-certificates.crt"
    if [ -f /etc/pip.conf ]; then
        cp /etc/pip.conf "$rootfs/etc/pip.conf"
    else
        printf '[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n' >"$rootfs/etc/pip.conf"
    fi
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
    tar -C "$rootfs" -cf "$WORK/base-rootfs.tar" .
    ctr=$("${BUILDAH[@]}" from scratch)
    CONTAINERS+=("$ctr")
    "${BUILDAH[@]}" add "$ctr" "$WORK/base-rootfs.tar" /
    "${BUILDAH[@]}" config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        --env LANG=C.UTF-8 --cmd python3 "$ctr"
    "${BUILDAH[@]}" commit --quiet --format docker "$ctr" "$BASE" >/dev/null
    rm -rf "$rootfs" "$WORK/base-rootfs.tar"
    echo "stand-in base ready in $(elapsed "$started") s"
else
    step "stand-in base image $BASE: kept from an earlier run"
fi

# -- 3. the build ---------------------------------------------------------------------------------
if [ "${IMAGE_CHECK_BUILD:-1}" = 0 ] && "${BUILDAH[@]}" inspect --type image "$IMAGE" >/dev/null 2>&1; then
    step "IMAGE_CHECK_BUILD=0: checking the image built earlier, $IMAGE"
    BUILD_SECONDS="(not rebuilt)"
else
    step "buildah build --isolation chroot (vfs) --build-arg BASE_IMAGE=$BASE"
    started=$(date +%s)
    "${BUILDAH[@]}" rmi --force "$IMAGE" >/dev/null 2>&1 || true
    "${BUILDAH[@]}" build --isolation chroot --format docker --pull=never \
        --build-arg BASE_IMAGE="$BASE" --tag "$IMAGE" --file Dockerfile .
    BUILD_SECONDS="$(elapsed "$started") s"
    echo "built $IMAGE in $BUILD_SECONDS"
fi

# The image's own settings, read back from the built image.
"${BUILDAH[@]}" inspect --type image "$IMAGE" >"$WORK/image.json"
# field KEY... : the image config's value at that path, a list printed one item a line
field() { "$PYTHON" -c '
import json, sys
value = json.load(open(sys.argv[1]))["Docker"]["config"]
for key in sys.argv[2:]:
    value = (value or {}).get(key)
print(*value, sep="\n") if isinstance(value, list) else print(value or "")' "$WORK/image.json" "$@"; }
USER_ID=$(field User)
mapfile -t CMD < <(field Cmd)
mapfile -t HEALTH < <(field Healthcheck Test)
HEALTH=("${HEALTH[@]:1}") # ["CMD", "python", "-c", "..."]: the command after the marker
echo "user: $USER_ID  workdir: $(field WorkingDir)  cmd: ${CMD[*]}"
echo "healthcheck: ${HEALTH[*]}"
case "$USER_ID" in "" | 0 | 0:* | root | root:*)
    echo "image-check: the image runs as root" >&2
    exit 1
    ;;
esac

KEY=$("$PYTHON" -c 'import secrets; print(secrets.token_hex(16))')
API_KEYS=$("$PYTHON" -c 'import hashlib, json, sys; print(json.dumps([{"name": "check",
    "scopes": ["predict", "read"], "sha256": hashlib.sha256(sys.argv[1].encode()).hexdigest()}]))' "$KEY")
# The canned events carry the placeholder key "local-dev-key".
EVENT_KEYS=$("$PYTHON" -c 'import hashlib, json; print(json.dumps([{"name": "events",
    "scopes": ["predict", "read"], "sha256": hashlib.sha256(b"local-dev-key").hexdigest()}]))')

new_container() {
    local ctr
    ctr=$("${BUILDAH[@]}" from --pull-never "$IMAGE")
    CONTAINERS+=("$ctr")
    echo "$ctr"
}

# Below, `buildah run` runs the image's CMD as the image does: its USER, WORKDIR and ENV. Chroot
# isolation shares the host's network, so each side reaches the other on 127.0.0.1.

# -- 4a. Lambda mode ------------------------------------------------------------------------------
# What the container start alone costs here (buildah's chroot setup and a bare interpreter), so
# the cold start below can be read without it.
ctr=$(new_container)
bare_started=$(date +%s%3N)
"${BUILDAH[@]}" run --isolation chroot --user "$USER_ID" "$ctr" -- python -c pass
BARE_MS=$(($(date +%s%3N) - bare_started))
echo "container start + bare python: ${BARE_MS} ms"
step "Lambda mode: the image's command against a local Runtime API emulator"
ctr=$(new_container)
port_file="$WORK/runtime-api.port"
rm -f "$port_file"
setsid "$PYTHON" -m tests.deploy.runtime_api --port-file "$port_file" --timeout 120 \
    events/rest_v1_predict_churn.json events/http_v2_predict_churn.json \
    events/http_v2_predict_churn_base64.json events/rest_v1_health.json events/http_v2_health.json \
    >"$WORK/lambda-results.jsonl" &
emulator=$!
PIDS+=("$emulator")
for _ in $(seq 100); do [ -s "$port_file" ] && break; sleep 0.1; done
[ -s "$port_file" ] || { echo "image-check: the emulator did not start" >&2; exit 1; }
started_ms=$(date +%s%3N)
setsid "${BUILDAH[@]}" run --isolation chroot --user "$USER_ID" \
    --env AWS_LAMBDA_RUNTIME_API="$(cat "$port_file")" \
    --env AWS_LAMBDA_FUNCTION_NAME=ml-api-ApiFunction-check \
    --env AWS_LAMBDA_FUNCTION_MEMORY_SIZE=1024 --env AWS_LAMBDA_FUNCTION_VERSION=\$LATEST \
    --env AWS_REGION=us-east-1 --env AWS_EXECUTION_ENV=AWS_Lambda_python3.12 \
    --env POWERTOOLS_SERVICE_NAME=ml-api --env POWERTOOLS_METRICS_NAMESPACE=MLOps \
    --env API_KEYS="$EVENT_KEYS" --env SERVED_MODELS="$SERVED" \
    "$ctr" -- "${CMD[@]}" >"$WORK/lambda-runtime.log" 2>&1 &
runtime=$!
PIDS+=("$runtime")
lambda_ok=0
if wait "$emulator"; then lambda_ok=1; fi
finished_ms=$(date +%s%3N)
cat "$WORK/lambda-results.jsonl"
if [ "$lambda_ok" != 1 ]; then
    echo "image-check: Lambda mode failed; the runtime's output:" >&2
    tail -40 "$WORK/lambda-runtime.log" >&2
    exit 1
fi
COLD_START=$("$PYTHON" -c 'import json, sys; print(json.loads(open(sys.argv[1]).readline())["seconds"])' \
    "$WORK/lambda-results.jsonl")
echo "Lambda mode: all events answered 200 ($((finished_ms - started_ms)) ms for all;"\
    "first prediction ${COLD_START} s after the emulator started, container start included)"
kill -- "-$runtime" 2>/dev/null || true

# -- 4b. server mode ------------------------------------------------------------------------------
step "server mode: the image's command with HOST=127.0.0.1 and a free PORT"
ctr=$(new_container)
port=$("$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
setsid "${BUILDAH[@]}" run --isolation chroot --user "$USER_ID" \
    --env HOST=127.0.0.1 --env PORT="$port" --env API_KEYS="$API_KEYS" --env SERVED_MODELS="$SERVED" \
    "$ctr" -- "${CMD[@]}" >"$WORK/server.log" 2>&1 &
server=$!
PIDS+=("$server")
"$PYTHON" - "$port" "$KEY" <<'EOF' || { tail -40 "$WORK/server.log" >&2; exit 1; }
import json, sys, time, urllib.error, urllib.request

port, key = sys.argv[1], sys.argv[2]
base = f"http://127.0.0.1:{port}"
started, deadline = time.monotonic(), time.monotonic() + 120
while True:
    try:
        with urllib.request.urlopen(f"{base}/health", timeout=5) as response:
            health = json.load(response)
        break
    except (urllib.error.URLError, ConnectionError):
        if time.monotonic() > deadline:
            sys.exit("image-check: /health did not answer within 120 s")
        time.sleep(0.2)
print(f"/health after {time.monotonic() - started:.1f} s: {health['status']}")
print("served:", json.dumps(health.get("models", health), sort_keys=True)[:600])
assert health["status"] == "ok", health
body = json.dumps({"player_id": "p_123", "sessions_7d": 4, "playtime_7d": 95.5, "iap_count": 1})
request = urllib.request.Request(f"{base}/predict/churn", data=body.encode(), method="POST",
                                 headers={"X-API-Key": key, "Content-Type": "application/json"})
with urllib.request.urlopen(request, timeout=10) as response:
    assert response.status == 200, response.status
    prediction = json.load(response)
print(f"POST /predict/churn -> 200 {prediction}")
assert prediction["player_id"] == "p_123" and 0 <= prediction["churn_probability"] <= 1
# The docs pages and every asset they name come from the image (functions/api/static/docs).
import re
served = 0
for path in ("/docs", "/redoc"):
    with urllib.request.urlopen(f"{base}{path}", timeout=10) as response:
        assert "default-src 'self'" in response.headers["Content-Security-Policy"], path
        page = response.read().decode()
    for asset in re.findall(r'(?:src|href)="(docs/static/[^"]+)"', page):
        with urllib.request.urlopen(f"{base}/{asset}", timeout=10) as response:
            served += len(response.read())
print(f"/docs, /redoc and their assets -> 200 ({served} bytes of assets, no key)")
EOF
# The image's HEALTHCHECK command, run inside the image (no curl there).
"${BUILDAH[@]}" run --isolation chroot --user "$USER_ID" --env PORT="$port" "$ctr" -- "${HEALTH[@]}"
echo "HEALTHCHECK command: exit 0"
kill -- "-$server" 2>/dev/null || true

# -- 5. size --------------------------------------------------------------------------------------
step "image size"
"${BUILDAH[@]}" images --format '{{.Name}}:{{.Tag}} {{.Size}}' "$IMAGE"
"${BUILDAH[@]}" images --format '{{.Name}}:{{.Tag}} {{.Size}}' "$BASE"
ctr=$(new_container)
VENV_MB=$("${BUILDAH[@]}" run --isolation chroot "$ctr" -- du -sm /opt/venv | cut -f1)
echo "virtual environment /opt/venv: ${VENV_MB} MB; largest packages (MB):"
"${BUILDAH[@]}" run --isolation chroot "$ctr" -- sh -c \
    'du -sm /opt/venv/lib/python3*/site-packages/* | sort -rn | head -8'
echo "served models: $SERVED"
echo "image-check passed: built in $BUILD_SECONDS; venv ${VENV_MB} MB; cold start through the" \
    "Lambda runtime path (container start -> first prediction, $SERVED loaded) ${COLD_START} s," \
    "of which container start + bare python ${BARE_MS} ms"
