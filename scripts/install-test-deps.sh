#!/usr/bin/env bash
# Installs what farm's test suite needs on a Debian/Ubuntu machine. Idempotent: it installs only
# what is missing. System packages need root (or sudo); Python packages go into the current Python.
#   openssh-server  real sshd boards on loopback (farm lab, integration tests)
#   sysstat         pidstat, to cross-check farm's memory sampler
#   postgresql      the PostgreSQL store tests
#   chromium        headless browser for the HTML report tests
#   python3-venv    the lab board's own virtualenv
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v /usr/sbin/sshd >/dev/null 2>&1 || need+=(openssh-server)
command -v pidstat >/dev/null 2>&1 || need+=(sysstat)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
/usr/bin/python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || need+=(python3-venv)

if [ ${#need[@]} -gt 0 ]; then
  SUDO=""
  if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
      echo "install-test-deps: please install as root: apt-get install -y ${need[*]}" >&2; exit 1
    fi
  fi
  echo "install-test-deps: installing ${need[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

python3 -m pip install -q --disable-pip-version-check -e '.[test]'
