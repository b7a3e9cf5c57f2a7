"""`make lab` sets up and starts JupyterLab in notebooks/: start it for real, fetch /lab over loopback, stop it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_make_lab_serves_the_lessons(tmp_path):
    port = _free_port()
    args = ["--no-browser", f"--port={port}", "--ServerApp.ip=127.0.0.1", "--IdentityProvider.token=",
            f"--LabApp.workspaces_dir={tmp_path / 'ws'}", f"--LabApp.user_settings_dir={tmp_path / 'settings'}"]
    if os.geteuid() == 0:
        args.append("--allow-root")
    env = dict(os.environ, JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"))
    proc = subprocess.Popen(["make", "-s", "lab", f"LAB_ARGS={' '.join(args)}"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        page = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/lab", timeout=5) as r:
                    page = (r.status, r.read().decode("utf-8", "replace"))
                    break
            except OSError:
                time.sleep(1)
        if page is None:
            output = proc.stdout.read(4000) if proc.poll() is not None else "(still starting)"
            pytest.fail(f"JupyterLab did not answer on port {port} within 240 s: {output}")
        assert page[0] == 200 and "JupyterLab" in page[1]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/contents", timeout=10) as r:
            listing = r.read().decode()
        assert "00_transfer_learning_basics.ipynb" in listing  # served from notebooks/
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
