#!/usr/bin/env bash
# Regenerates every artefact of the paper: each notebook in notebooks/, run by papermill
# with the parameters of a profile (profiles/<name>.yaml), executed copies written to
# results/notebooks/. A failing notebook stops the script with its name; what earlier
# notebooks wrote stays.
#   ./run_all.sh [--profile smoke|cpu|paper] [--only NOTEBOOK]
set -euo pipefail
cd "$(dirname "$0")"
profile=cpu
only=""
while (( $# )); do
    case "$1" in
        --profile) profile="$2"; shift 2 ;;
        --only) only="${2%.ipynb}"; shift 2 ;;
        -h|--help) sed -n '2,7p' "$0"; exit 0 ;;
        *) echo "run_all: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done
params="profiles/$profile.yaml"
[[ -f "$params" ]] || { echo "run_all: no profile $params (have: $(ls profiles | tr '\n' ' '))" >&2; exit 2; }
source scripts/bootstrap.sh
shopt -s nullglob
notebooks=(notebooks/*.ipynb)
if [[ -n "$only" ]]; then
    notebooks=("notebooks/$only.ipynb")
    [[ -f "${notebooks[0]}" ]] || { echo "run_all: no notebook ${notebooks[0]}" >&2; exit 2; }
fi
mkdir -p results/notebooks
for nb in "${notebooks[@]}"; do
    name="$(basename "$nb")"
    echo "run_all: $name ($profile)"
    if ! "$PY" -m papermill "$nb" "results/notebooks/$name" -f "$params" --cwd . --no-progress-bar; then
        echo "run_all: $name failed; its executed copy with the failing cell is results/notebooks/$name" >&2
        exit 1
    fi
done
echo "run_all: done; executed notebooks are in results/notebooks/"
