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

. "$(dirname "$0")/apt-install-missing.sh"
install_missing "system packages" 0 ${need[@]+"${need[@]}"}
