"""JupyterLab as a way in: a real Jupyter server (the one JupyterLab runs on) lists the notebooks,
starts a kernel in this environment, and runs a cell that imports hetero_ae and reads a cached
result; then it stops, leaving no process behind."""

from __future__ import annotations

import asyncio
import json
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
pytest.importorskip("jupyterlab")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``jupyter server`` on the loopback address with a random port and token."""

    def __init__(self, root: Path) -> None:
        self.port, self.token = free_port(), secrets.token_hex(16)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "jupyter_server", "--no-browser", "--ServerApp.ip=127.0.0.1",
             f"--ServerApp.port={self.port}", "--ServerApp.port_retries=0", f"--IdentityProvider.token={self.token}",
             f"--ServerApp.root_dir={root}", "--ServerApp.allow_root=True"],  # CI runs as root
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while True:
            try:
                self.get("/api/status")
                return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the server did not start: {self.proc.stderr.read()[-2000:]}") from None
                time.sleep(0.3)

    def request(self, method: str, path: str) -> dict | list | None:
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", method=method,
                                     headers={"Authorization": f"token {self.token}"}, data=b"{}" if method == "POST" else None)
        with urllib.request.urlopen(req, timeout=30) as r:
            body = r.read()
        return json.loads(body) if body else None

    def get(self, path: str) -> dict | list | None:
        return self.request("GET", path)

    async def execute(self, kernel_id: str, code: str) -> str:
        """Run ``code`` in the kernel through the server's websocket; its stdout."""
        from tornado.websocket import websocket_connect

        url = f"ws://127.0.0.1:{self.port}/api/kernels/{kernel_id}/channels?token={self.token}"
        ws = await websocket_connect(url)
        msg_id = uuid.uuid4().hex
        ws.write_message(json.dumps({
            "header": {"msg_id": msg_id, "username": "test", "session": uuid.uuid4().hex, "msg_type": "execute_request",
                       "version": "5.3"},
            "parent_header": {}, "metadata": {}, "channel": "shell",
            "content": {"code": code, "silent": False, "store_history": False, "user_expressions": {},
                        "allow_stdin": False, "stop_on_error": True}}))
        out, replied, idle = [], False, False
        while not (replied and idle):  # the reply (shell) and the idle status (iopub) come in either order
            msg = json.loads(await asyncio.wait_for(ws.read_message(), 120))
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind = msg["header"]["msg_type"]
            if kind == "stream":
                out.append(msg["content"]["text"])
            elif kind == "error":
                raise AssertionError("\n".join(msg["content"]["traceback"]))
            elif kind == "execute_reply":
                replied = True
            elif kind == "status":
                idle = msg["content"]["execution_state"] == "idle"
        ws.close()
        return "".join(out)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)


def test_a_jupyter_server_runs_a_notebook_cell_with_hetero_ae_and_leaves_nothing_behind():
    server = Server(ROOT)
    kernel_id = None
    try:
        listed = {c["name"] for c in server.get("/api/contents/notebooks")["content"]}
        assert {"table1_comparison.ipynb", "fig4_heatmaps.ipynb"} <= listed
        kernel_id = server.request("POST", "/api/kernels")["id"]
        code = ("import hetero_ae, pandas as pd\n"
                "auc = pd.read_csv('results/tables/table1_auc.csv')\n"
                "print(hetero_ae.__version__, list(auc.columns)[0], len(auc))")
        out = asyncio.run(server.execute(kernel_id, code))
        version, first, rows = out.split()
        methods = yaml.safe_load((ROOT / "profiles" / "cpu.yaml").read_text())["methods"]
        assert version and first == "AUC" and int(rows) == len(methods)  # the cached Table I, one row per method
        assert any(kernel_id in command_line(p) for p in Path("/proc").glob("[0-9]*"))  # the check below can see it
        server.request("DELETE", f"/api/kernels/{kernel_id}")
        assert server.get("/api/kernels") == []
    finally:
        server.stop()
    left = [cmd for cmd in map(command_line, Path("/proc").glob("[0-9]*")) if kernel_id and kernel_id in cmd]
    assert server.proc.returncode is not None and not left, left


def command_line(proc: Path) -> str:
    """A process's command line ('' once it has gone)."""
    try:
        return (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""
