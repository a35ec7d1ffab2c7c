#!/usr/bin/env bash
# The README's first command: installs the few system packages the demo uses, builds, runs the demo.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then
    echo "the demo creates network namespaces and devices: run it as root" >&2
    exit 1
fi
need=()
for p in iproute2 iputils-ping; do dpkg -s "$p" >/dev/null 2>&1 || need+=("$p"); done
if [ ${#need[@]} -gt 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
cargo build --release --locked --workspace --bins
exec target/release/vswitch-demo
