# Sourced by scripts/install-*-deps.sh: `install_missing WHAT CODE PACKAGE...` installs the
# Debian packages named (those found missing) with apt-get as root; without root or apt-get it
# says what is missing and exits with CODE.
install_missing() {
  local what=$1 unable=$2
  shift 2
  [ $# -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "missing $what: $* (install them with apt-get as root)" >&2
    exit "$unable"
  fi
  echo "installing $what: $*" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # Do not let the packages start their own servers: the tests start theirs.
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
  chmod +x /usr/sbin/policy-rc.d
  trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}
