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

if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ] || ! have apt-get; then
  echo "missing benchmark peers: ${need[*]} (install them with apt-get as root)" >&2
  exit 1
fi
echo "installing benchmark peers: ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
