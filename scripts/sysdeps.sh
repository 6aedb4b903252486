#!/usr/bin/env bash
# System packages the test suite needs: Debian's chromium (Playwright drives it; never
# `playwright install`), PostgreSQL 15, Prometheus 2.42 and Alertmanager 0.25 (the dashboard's
# end-to-end tests start them on loopback), and valgrind (the `instructions` instrument runs
# callgrind, and Allele's C extension is built against valgrind/callgrind.h, which the Debian
# package ships). Installs only what is missing; needs root for apt-get.
#
#   scripts/sysdeps.sh            every package above
#   scripts/sysdeps.sh valgrind   only valgrind (what `make env` asks for before building Allele)
set -euo pipefail
missing=()
if [ "${1:-}" = "valgrind" ]; then
    { command -v valgrind >/dev/null 2>&1 && [ -f /usr/include/valgrind/callgrind.h ]; } \
        || missing+=(valgrind)
    if [ ${#missing[@]} -gt 0 ]; then
        if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
            echo "warning: valgrind is missing (install it with apt-get as root, then reinstall" \
                 "Allele): the 'instructions' instrument will not be available" >&2
            exit 0
        fi
        echo ">> apt-get install valgrind"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind >/dev/null
    fi
    exit 0
fi
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v pg_ctlcluster >/dev/null 2>&1 || missing+=(postgresql)
command -v tmux >/dev/null 2>&1 || missing+=(tmux)
command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
command -v prometheus-alertmanager >/dev/null 2>&1 || missing+=(prometheus-alertmanager)
{ command -v valgrind >/dev/null 2>&1 && [ -f /usr/include/valgrind/callgrind.h ]; } \
    || missing+=(valgrind)
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
        echo "error: missing system packages: ${missing[*]} (install them with apt-get as root)" >&2
        exit 1
    fi
    echo ">> apt-get install ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
