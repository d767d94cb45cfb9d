"""Executes the notebooks for ``run_all.sh``, quietly, one after the other in one process.

``python -m hetero_ae.report.execute NAME... --profile P --device D --results R`` runs each
``notebooks/NAME.ipynb`` from the repository root with those parameters (the notebook reads the
rest from its profile), writes the executed copy to ``R/notebooks/NAME.ipynb`` and its HTML
rendering to ``R/html/NAME.html``, and records its wall time, status and cache hits in the
manifest (``report.manifest.record``, which prints the notebook's one line). The HTML leaves out
the code of the cells tagged ``HIDDEN_INPUT`` (their output stays), so that a page opens with its
title, what ran and the verdicts (``report.first_screen``). Each notebook gets
a fresh kernel; one process drives them all, so papermill and nbconvert are loaded once, not
once per notebook.

The kernel talks to papermill over IPC sockets in a private temporary folder rather than TCP,
so it has no reason to warn that its traffic is unencrypted; papermill's own log and progress
bar are off. A failing cell stops the run: one line on stderr (the notebook, the cell, the
error), the failure in the manifest, exit status 1; the executed copy holds the whole traceback
and what earlier notebooks wrote stays.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from jupyter_client.manager import AsyncKernelManager

from ..io import write_text
from .manifest import record

# cells whose code the HTML report leaves out, showing their output only: the notebook's parameters,
# papermill's injected copy of them, its setup (reading the profile, the runs) and the first screen
# (what ran, the verdicts); the notebook itself keeps them, and the first screen names it
HIDDEN_INPUT = ("parameters", "injected-parameters", "setup", "first-screen")


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


def to_html(notebook: Path, out_dir: Path, exporter: Any) -> Path:
    """``out_dir/<notebook's name>.html``: ``exporter``'s (nbconvert's ``HTMLExporter``) rendering of an
    executed notebook, written atomically."""
    body, _ = exporter.from_filename(str(notebook))
    return write_text(out_dir / f"{notebook.stem}.html", body)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hetero_ae.report.execute", description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="+", help="names in notebooks/, in the order to run them")
    parser.add_argument("--profile", required=True)
    parser.add_argument("--device", required=True)
    parser.add_argument("--results", required=True, type=Path)
    a = parser.parse_args(argv)
    from nbconvert import HTMLExporter
    from traitlets.config import Config
    from papermill.exceptions import PapermillExecutionError

    exporter = HTMLExporter(config=Config({"TagRemovePreprocessor": {"enabled": True,
                                                                      "remove_input_tags": list(HIDDEN_INPUT)}}))
    parameters = {"profile": a.profile, "device": a.device, "results_dir": str(a.results)}
    for name in a.notebooks:
        out = a.results / "notebooks" / f"{name}.ipynb"
        out.parent.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        try:
            execute(Path("notebooks") / f"{name}.ipynb", out, parameters)
            to_html(out, a.results / "html", exporter)
        except Exception as e:  # a failing cell, a dead kernel, an unreadable notebook: one line, and stop
            record(a.results, name, time.perf_counter() - start, "failed")
            if isinstance(e, PapermillExecutionError):
                message = str(e.evalue).strip().splitlines()[0] if str(e.evalue).strip() else ""
                print(f"run_all: {name}: cell {e.exec_count} raised {e.ename}: {message}", file=sys.stderr)
                print(f"run_all: {name} failed; the failing cell and its traceback are in {out}", file=sys.stderr)
            else:
                message = str(e).strip().splitlines()[0] if str(e).strip() else ""
                print(f"run_all: {name} failed: {type(e).__name__}: {message}", file=sys.stderr)
            return 1
        record(a.results, name, time.perf_counter() - start, "ok")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
