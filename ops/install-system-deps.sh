#!/usr/bin/env bash
# Install the Debian packages that the operations tests need, only those still missing:
#   prometheus -> promtool and prometheus (tests/ops/test_prometheus.py)
#   chromium   -> the headless browser that opens the dashboard (tests/ops/test_dashboard.py)
#   serf       -> HashiCorp Serf, the membership reference the devnet compares against
#   wrk        -> the /health throughput figure of the benchmark
#   iproute2   -> `ip netns`: the --netns devnet, its partitions, the loss soak
#   nftables   -> `nft`: the packet loss of the benchmark's loss soak (no netem here)
# Idempotent and quiet, so .ci/run and `make` can call it on every run. Needs root (CI and
# these machines run as root); elsewhere it says what to install and exits non-zero.
set -euo pipefail

wanted=(prometheus chromium serf wrk iproute2 nftables)
missing=()
for package in "${wanted[@]}"; do
    # dpkg-query answers "install ok installed" only for a fully installed package.
    if [[ "$(dpkg-query -W -f='${Status}' "$package" 2>/dev/null)" != "install ok installed" ]]; then
        missing+=("$package")
    fi
done
if ((${#missing[@]} == 0)); then
    exit 0
fi

if [[ "$(id -u)" != 0 ]]; then
    echo "install-system-deps: as root, run: apt-get install ${missing[*]}" >&2
    exit 1
fi

echo "install-system-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
