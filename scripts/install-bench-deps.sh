#!/usr/bin/env bash
# Installs the peers bench/bench_incremental.py compares vigil with, when they
# are missing: restic and borgbackup (Debian packages). Only `make bench-setup`
# runs this; `make test` never needs them, and the bench skips a peer that is
# not installed, saying so.
set -euo pipefail

need=()
have() { command -v "$1" >/dev/null 2>&1; }
have restic || need+=(restic)
have borg || need+=(borgbackup)

. "$(dirname "$0")/apt-install-missing.sh"
install_missing "benchmark peers" 1 ${need[@]+"${need[@]}"}
