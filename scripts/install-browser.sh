#!/usr/bin/env bash
# Installs Debian's Chromium for the browser tests (tests marked `browser`), which drive it through
# Playwright with executable_path=/usr/bin/chromium. Idempotent: does nothing when it is installed.
# Playwright's own browser download is not used.
set -euo pipefail

CHROMIUM=/usr/bin/chromium

if [ -x "$CHROMIUM" ]; then
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "Chromium is missing and apt-get is not available: install Chromium at $CHROMIUM to run the browser tests" >&2
    exit 1
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi

$SUDO apt-get update
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium
"$CHROMIUM" --version
