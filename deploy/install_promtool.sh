#!/usr/bin/env bash
# Installs promtool into the directory $1 (make: .venv/bin), from the distribution's `prometheus`
# package (Debian and Ubuntu ship promtool in it), without installing that package: no service,
# no system user, nothing outside $1. The package is downloaded with apt-get and unpacked with
# dpkg-deb; when the machine has no package lists yet, they are fetched first (root, or sudo).
set -euo pipefail

dest=${1:?usage: install_promtool.sh DEST_DIR}
mkdir -p "$dest"
dest=$(cd "$dest" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

if ! apt-get download prometheus >/dev/null 2>&1; then
    as_root apt-get update -qq
    apt-get download prometheus >/dev/null
fi
dpkg-deb -x prometheus_*.deb root
install -m 0755 root/usr/bin/promtool "$dest/promtool"
"$dest/promtool" --version | head -1
