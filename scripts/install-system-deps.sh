#!/usr/bin/env bash
# Installs the Debian packages vigil's tests use, when they are missing:
# zstd and tar/bsdtar (restore without vigil), age, sqlite3, and the
# PostgreSQL and MariaDB servers the integration tests start themselves;
# systemd for systemd-analyze (the schedule tests check timers with it);
# jq for the by-hand restore of an incremental backup (docs/restore.md);
# chromium, the headless browser the report and fleet pages are tested in.
set -euo pipefail

need=()
have() { command -v "$1" >/dev/null 2>&1; }
have zstd || need+=(zstd)
have bsdtar || need+=(libarchive-tools)
have age || need+=(age)
have sqlite3 || need+=(sqlite3)
have mariadbd || [ -x /usr/sbin/mariadbd ] || need+=(mariadb-server)
have mariadb-dump || need+=(mariadb-client)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
have systemd-analyze || need+=(systemd)
have jq || need+=(jq)
have chromium || need+=(chromium)

if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ] || ! have apt-get; then
  echo "missing system packages: ${need[*]} (install them with apt-get as root)" >&2
  exit 0
fi
echo "installing system packages: ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# Do not let the packages start their own servers: the tests start theirs.
printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
chmod +x /usr/sbin/policy-rc.d
trap 'rm -f /usr/sbin/policy-rc.d' EXIT
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
