#!/usr/bin/env bash
# System packages the test suite needs: Debian's chromium (Playwright drives it; never
# `playwright install`), PostgreSQL 15, and Prometheus 2.42 and Alertmanager 0.25 (the dashboard's
# end-to-end tests start them on loopback). Installs only what is missing; needs root for apt-get.
set -euo pipefail
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v pg_ctlcluster >/dev/null 2>&1 || missing+=(postgresql)
command -v tmux >/dev/null 2>&1 || missing+=(tmux)
command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
command -v prometheus-alertmanager >/dev/null 2>&1 || missing+=(prometheus-alertmanager)
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
        echo "error: missing system packages: ${missing[*]} (install them with apt-get as root)" >&2
        exit 1
    fi
    echo ">> apt-get install ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
