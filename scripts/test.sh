#!/usr/bin/env bash
# farm's test suite: installs what the tests need (scripts/install-test-deps.sh), then runs
# pytest. Extra arguments go to pytest (e.g. scripts/test.sh tests/unit -x).
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-test-deps.sh || exit 1
python3 -m pytest "$@"
status=$?
if [ "$status" -eq 5 ]; then
  echo "test.sh: pytest collected no tests: the selection is wrong or the suite is broken" >&2
  exit 1
fi
exit "$status"
