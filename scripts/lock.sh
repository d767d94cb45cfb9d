#!/usr/bin/env bash
# Refreshes requirements.lock, the exact version of every package that the README's commands
# install, from pyproject.toml (its dependencies and the dev, notebooks and onnx extras), and
# environment.yml from that lock, so that pip and conda users get the same versions:
#   scripts/lock.sh
# uv resolves it for every platform, Python 3.11 and newer (the lock carries the markers), with
# the indexes that pip is configured with here; torch and torchvision stay at the releases in
# scripts/lock-constraints.txt. Run it after changing a dependency, then ./run_tests.sh: the
# committed runs are keyed on the data, not on the versions, but tests/test_committed_runs.py
# checks that the data still come out as they did.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
tools="$(mktemp -d)"
trap 'rm -rf "$tools"' EXIT
"$python" -m pip install --quiet --disable-pip-version-check --target "$tools" uv
indexes=()
for url in $("$python" -m pip config get global.extra-index-url 2>/dev/null || true); do indexes+=(--extra-index-url "$url"); done
for dir in ${PIP_FIND_LINKS:-$("$python" -m pip config get global.find-links 2>/dev/null || true)}; do indexes+=(--find-links "$dir"); done
PYTHONPATH="$tools" "$python" -m uv pip compile pyproject.toml --extra dev --extra notebooks --extra onnx \
    --universal --python-version 3.11 --constraint scripts/lock-constraints.txt \
    --index-strategy unsafe-best-match "${indexes[@]}" --custom-compile-command scripts/lock.sh \
    --output-file requirements.lock --quiet
"$python" - <<'PY'
from pathlib import Path

pins = [line.strip() for line in Path("requirements.lock").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")]
head = """\
# Written by scripts/lock.sh from requirements.lock: the same versions for conda users.
#   conda env create -f environment.yml && conda activate hetero-ae && pip install -e . --no-deps
name: hetero-ae
channels:
  - conda-forge
dependencies:
  - python=3.11
  - pip
  - pip:
"""
Path("environment.yml").write_text(head + "".join(f'      - "{p}"\n' for p in pins))
print(f"scripts/lock.sh: {len(pins)} packages pinned in requirements.lock and environment.yml")
PY
