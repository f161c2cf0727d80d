#!/usr/bin/env bash
# Installs the Debian packages that the sandbox and the tests run for real, only when missing:
# Prometheus (the real server, scraped in tests) and kubectl (tests drive the API stand-in with it).
set -euo pipefail
need=()
command -v prometheus >/dev/null 2>&1 || [ -x /usr/bin/prometheus ] || need+=(prometheus)
command -v kubectl >/dev/null 2>&1 || need+=(kubernetes-client)
[ ${#need[@]} -eq 0 ] && exit 0
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "installing Debian packages: ${need[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
# The Debian package starts a system Prometheus on :9090; the project starts its own on free ports.
if [[ " ${need[*]} " == *" prometheus "* ]] && command -v systemctl >/dev/null 2>&1; then
  $sudo systemctl disable --now prometheus prometheus-node-exporter >/dev/null 2>&1 || true
fi
