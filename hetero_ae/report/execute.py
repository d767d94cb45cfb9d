"""Executes one notebook with papermill for ``run_all.sh``, quietly.

``python -m hetero_ae.report.execute NOTEBOOK OUT --profile P --device D --results R`` runs
``NOTEBOOK`` from the repository root with those parameters (the notebook reads the rest from
its profile) and writes the executed copy to ``OUT``. The kernel talks to papermill over IPC
sockets in a private temporary folder rather than TCP, so it has no reason to warn that its
traffic is unencrypted; papermill's own log and progress bar are off. A failing cell is one
line on stderr (the notebook, the cell, the error) and exit status 1; the executed copy holds
the whole traceback.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import uuid
from pathlib import Path

from jupyter_client.manager import AsyncKernelManager


class IPCKernelManager(AsyncKernelManager):
    """A kernel reached through IPC sockets under a private temporary folder (not TCP on the loopback)."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self._socket_dir = Path(tempfile.mkdtemp(prefix="hetero-ae-kernel-"))
        self.transport = "ipc"
        self.ip = str(self._socket_dir / f"kernel-{uuid.uuid4().hex[:8]}")

    async def _async_cleanup_resources(self, restart: bool = False) -> None:
        await super()._async_cleanup_resources(restart=restart)
        if not restart:
            shutil.rmtree(self._socket_dir, ignore_errors=True)

    cleanup_resources = _async_cleanup_resources  # the async manager's public name (jupyter_client)


def execute(notebook: Path, out: Path, parameters: dict[str, object]) -> None:
    """Run ``notebook`` with those of ``parameters`` it declares into ``out``; PapermillExecutionError
    for a failing cell."""
    import papermill

    declared = papermill.inspect_notebook(str(notebook))
    parameters = {k: v for k, v in parameters.items() if k in declared}
    papermill.execute_notebook(str(notebook), str(out), parameters=parameters, cwd=".", kernel_name="python3",
                               progress_bar=False, log_output=False,
                               kernel_manager_class=f"{__name__}.IPCKernelManager")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hetero_ae.report.execute", description=__doc__.splitlines()[0])
    parser.add_argument("notebook", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--profile", required=True)
    parser.add_argument("--device", required=True)
    parser.add_argument("--results", required=True)
    a = parser.parse_args(argv)
    from papermill.exceptions import PapermillExecutionError

    try:
        execute(a.notebook, a.out, {"profile": a.profile, "device": a.device, "results_dir": a.results})
    except PapermillExecutionError as e:
        message = str(e.evalue).strip().splitlines()[0] if str(e.evalue).strip() else ""
        print(f"run_all: {a.notebook.stem}: cell {e.exec_count} raised {e.ename}: {message}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
