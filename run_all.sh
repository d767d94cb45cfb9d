#!/usr/bin/env bash
# Regenerates every artefact of the paper, in the paper's order: each notebook in notebooks/,
# run by papermill with a profile's name (profiles/<name>.yaml), which the notebook reads.
#   results/notebooks/  executed notebooks        results/tables/   CSV and Markdown
#   results/html/       the report (index.html)   results/figures/  PNG and PDF
#   results/manifest.json  commit, profile, versions, device, wall time and cache hits per notebook
# Trained runs are cached under results/runs/: a second call only re-executes the notebooks.
# The default profile (cpu) writes results/; another profile writes results/<profile>/ unless
# --results says where, so that a quick check never overwrites the committed report.
# A failing notebook stops the script with its name and the cell that failed; what earlier
# notebooks wrote stays.
#   ./run_all.sh [--profile smoke|cpu|paper|FILE.yaml] [--only NOTEBOOK] [--device cpu|cuda|cuda:N] [--results DIR]
#                [--nproc N] [--jobs N]
# First the tables' runs that the cache lacks are counted (how many, why, about how long here) and
# trained (hetero-ae run-profile), --jobs N (default: the profile's train_jobs, else 1) at a time,
# each in its own process with cores/N threads; then the notebooks run, and find them cached.
# --nproc N (N > 1) first trains the tables' runs with DDP in N processes (torchrun; N GPUs with
# --device cuda, else gloo on the CPU), then runs the notebooks, which find them in the cache;
# the GAN baselines, which DDP does not train here, are trained by the notebooks in one process.
set -euo pipefail
cd "$(dirname "$0")"
profile=cpu
only=""
device=""
results=""
nproc=1
jobs=""
while (( $# )); do
    case "$1" in
        --profile) profile="${2:?--profile needs a name}"; shift 2 ;;
        --only) only="$(basename "${2:?--only needs a notebook name}" .ipynb)"; shift 2 ;;
        --device) device="${2:?--device needs a torch device}"; shift 2 ;;
        --results) results="${2:?--results needs a folder}"; shift 2 ;;
        --nproc) nproc="${2:?--nproc needs a number of processes}"; shift 2 ;;
        --jobs) jobs="${2:?--jobs needs a number of runs}"; shift 2 ;;
        -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
        *) echo "run_all: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done
params="profiles/$profile.yaml"
[[ "$profile" == *.yaml && -f "$profile" ]] && params="$profile"
[[ "$nproc" =~ ^[1-9][0-9]*$ ]] || { echo "run_all: --nproc needs a positive number of processes, got $nproc" >&2; exit 2; }
[[ -f "$params" ]] || { echo "run_all: no profile $params (have: $(ls profiles | tr '\n' ' '), or a .yaml file)" >&2; exit 2; }
profile="$(basename "$params" .yaml)"
# The default profile's report is results/; any other profile writes under results/<profile>/ unless told.
[[ -n "$results" ]] || { [[ "$profile" == cpu ]] && results=results || results="results/$profile"; }
source scripts/bootstrap.sh
settings="$("$PY" -m hetero_ae.experiment.profiles "$params" device train_jobs)" || exit 2  # read and checked once
[[ -n "$device" ]] || device="$(sed -n 1p <<< "$settings")"
[[ -n "$jobs" ]] || jobs="$(sed -n 2p <<< "$settings")"
[[ "$jobs" =~ ^[1-9][0-9]*$ ]] || { echo "run_all: --jobs needs a positive number of runs, got $jobs" >&2; exit 2; }
(( jobs > 1 && nproc > 1 )) && { echo "run_all: --jobs and --nproc do not mix: one trains runs side by side, the other one run with DDP" >&2; exit 2; }

mapfile -t notebooks < <("$PY" -m hetero_ae.report.manifest order)
if [[ -n "$only" ]]; then
    [[ -f "notebooks/$only.ipynb" ]] || { echo "run_all: no notebook notebooks/$only.ipynb (have: ${notebooks[*]})" >&2; exit 2; }
    notebooks=("$only")
fi
"$PY" -m hetero_ae make-data synthetic --profile "$params"
"$PY" -m hetero_ae.report.manifest --results "$results" start --profile "$profile" --device "$device"
if (( nproc > 1 )); then
    prefill=()
    [[ -n "$only" ]] && prefill=(--notebook "$only")
    echo "run_all: training the tables' runs with DDP in $nproc processes ($device)"
    "$PY" -m torch.distributed.run --standalone --nproc-per-node "$nproc" -m hetero_ae run-profile --profile "$params" \
        --results "$results" --device "$device" "${prefill[@]}"
fi
if (( nproc == 1 )); then
    # first what the cache lacks (how many, why, how long here), then those runs, $jobs at a time
    prefill=()
    [[ -n "$only" ]] && prefill=(--notebook "$only")
    "$PY" -m hetero_ae run-profile --profile "$params" --results "$results" --device "$device" --jobs "$jobs" "${prefill[@]}"
fi
"$PY" -m hetero_ae.report.execute "${notebooks[@]}" --profile "$params" --device "$device" --results "$results" || exit 1
"$PY" -m hetero_ae.report.manifest --results "$results" index
echo "run_all: done in $((SECONDS / 60)) min; open $results/html/index.html"
