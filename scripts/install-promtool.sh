#!/usr/bin/env bash
# Installs Debian's `prometheus` package for its `promtool`, which the deploy tests use to check the
# alerting rules (deploy/prometheus/alerts.yml) and run their unit tests. Idempotent: does nothing
# when promtool is already on the PATH. The Prometheus server the package also brings is not used
# by the tests; it is stopped if the package's installation started it.
set -euo pipefail

if command -v promtool >/dev/null 2>&1; then
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "promtool is missing and apt-get is not available: install Prometheus's promtool to check the alerting rules" >&2
    exit 1
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi

install() {
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus
}
# The package lists are refreshed once, and only when they cannot provide the package as they are
# (make test's browser step may just have refreshed them).
if ! install; then
    $SUDO apt-get update
    install
fi
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet prometheus 2>/dev/null; then
    $SUDO systemctl stop prometheus || true
fi
promtool --version
