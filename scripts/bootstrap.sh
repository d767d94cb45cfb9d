# Sourced by run_all.sh and run_tests.sh: find or make the Python environment, install the
# exact versions of requirements.lock (scripts/lock.sh writes it from pyproject.toml) and this
# package, and export PY (the interpreter to use). A second run installs nothing: the installed
# state is stamped with a hash of pyproject.toml and requirements.lock.
#   - an active virtualenv or conda env is used as it is (packages installed into it);
#   - otherwise ./.venv is created with the system python3.
set -euo pipefail
_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [[ -n "${VIRTUAL_ENV:-}" ]]; then
    _prefix="$VIRTUAL_ENV"
elif [[ -n "${CONDA_PREFIX:-}" ]]; then
    _prefix="$CONDA_PREFIX"
else
    _prefix="$_root/.venv"
    if [[ ! -x "$_prefix/bin/python" ]]; then
        echo "bootstrap: creating $_prefix" >&2
        python3 -m venv "$_prefix"
    fi
fi
PY="$_prefix/bin/python"
export PY
_want="$(cat "$_root/pyproject.toml" "$_root/requirements.lock" | sha256sum | cut -d' ' -f1)"
_stamp="$_prefix/.hetero-ae-installed"
if [[ "$(cat "$_stamp" 2>/dev/null || true)" != "$_want" ]]; then
    echo "bootstrap: installing hetero_ae and its dependencies into $_prefix" >&2
    _log="$_prefix/.hetero-ae-install.log"
    if ! { "$PY" -m pip install --disable-pip-version-check -r "$_root/requirements.lock" &&
           "$PY" -m pip install --disable-pip-version-check --no-deps -e "$_root"; } > "$_log" 2>&1; then
        tail -n 30 "$_log" >&2
        echo "bootstrap: pip install failed; the full log is $_log" >&2
        exit 1
    fi
    echo "$_want" > "$_stamp.tmp" && mv "$_stamp.tmp" "$_stamp"
fi
