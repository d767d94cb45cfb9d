#!/usr/bin/env bash
# Creates the environment if needed (see scripts/bootstrap.sh), then runs the test suite.
# Extra arguments go to pytest, e.g. ./run_tests.sh -k loss -x
set -euo pipefail
cd "$(dirname "$0")"
source scripts/bootstrap.sh
exec "$PY" -m pytest "$@"
