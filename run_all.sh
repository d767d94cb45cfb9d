#!/usr/bin/env bash
# Regenerates every artefact of the paper: each notebook in notebooks/ run by papermill.
set -euo pipefail
cd "$(dirname "$0")"
source scripts/bootstrap.sh
shopt -s nullglob
notebooks=(notebooks/*.ipynb)
if (( ${#notebooks[@]} == 0 )); then
    echo "run_all: no notebooks yet; the environment is ready ($PY)."
    exit 0
fi
echo "run_all: notebooks are not wired up yet: ${notebooks[*]}" >&2
exit 1
