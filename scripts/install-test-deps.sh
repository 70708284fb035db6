#!/usr/bin/env bash
# Installs what farm's test suite needs on a Debian/Ubuntu machine. Idempotent: it installs only
# what is missing. System packages need root (or sudo); Python packages go into the current Python.
#   openssh-server  real sshd boards on loopback (farm lab, integration tests)
#   sysstat         pidstat, to cross-check farm's memory sampler
#   postgresql      the PostgreSQL store tests
#   chromium        headless browser for the HTML report tests
#   python3-venv    the lab board's own virtualenv
# With FARM_TEST_SLOW=1 (the CI step that runs `pytest -m slow`), also what the emulated aarch64
# lab board needs (tests/slow, `farm lab up --arch arm64`):
#   qemu-user-static binfmt-support debootstrap
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v /usr/sbin/sshd >/dev/null 2>&1 || need+=(openssh-server)
command -v pidstat >/dev/null 2>&1 || need+=(sysstat)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
/usr/bin/python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || need+=(python3-venv)
if [ "${FARM_TEST_SLOW:-0}" = 1 ]; then
  command -v qemu-aarch64-static >/dev/null 2>&1 || need+=(qemu-user-static)
  command -v update-binfmts >/dev/null 2>&1 || need+=(binfmt-support)
  command -v debootstrap >/dev/null 2>&1 || need+=(debootstrap)
fi

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

# .[test] includes procrastinate and psycopg (fleet mode: farm submit / worker, tests/fleet)
python3 -m pip install -q --disable-pip-version-check -e '.[test]'
# ddddocr ships common_det.onnx (MIT), the real YOLOX detector of tests/e2e/test_detector_accuracy.py;
# --no-deps: its own code (and opencv) is not needed, only the model file inside the wheel.
python3 -m pip install -q --disable-pip-version-check --no-deps 'ddddocr==1.6.1'
