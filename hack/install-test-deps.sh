#!/usr/bin/env bash
# install-test-deps.sh installs the Debian packages the tests use: the
# mosquitto broker (the peer for comparisons and benchmarks), its clients
# (interop tests), python3-paho-mqtt (interop tests) and prometheus, for its
# promtool (test/monitoring checks and unit-tests the alert rules). It does
# nothing when they are already there, so it is cheap to call on every test
# run.
set -euo pipefail

pkgs=(mosquitto mosquitto-clients python3-paho-mqtt prometheus)
missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
	exit 0
fi
sudo=""
if [[ $(id -u) -ne 0 ]]; then sudo="sudo"; fi
echo "install-test-deps: installing ${missing[*]}" >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Debian starts mosquitto as a service on install; the tests run their own
# instances on free ports and must not find port 1883 taken.
# Likewise prometheus (port 9090): the tests only run promtool.
for svc in mosquitto prometheus; do
	if command -v systemctl >/dev/null && systemctl is-active --quiet "$svc" 2>/dev/null; then
		$sudo systemctl stop "$svc" || true
	fi
done
