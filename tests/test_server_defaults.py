"""`make server`'s safe defaults: no open server without logins, and MLflow's own Host and
origin checks set to the chosen host."""

import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request

from catdog import PROJECT_ROOT
from helpers import free_port


def _make_server(tmp_path, *settings: str) -> list[str]:
    return [
        "make",
        "--no-print-directory",
        "-C",
        str(PROJECT_ROOT),
        "server",
        f"BACKEND_STORE_URI=sqlite:///{tmp_path}/mlflow.db",
        f"ARTIFACTS_DESTINATION={tmp_path}/artifacts",
        *settings,
    ]


def _status(url: str, body: bytes | None = None, **headers) -> int:
    if body is not None:
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(url, data=body, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return answer.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_an_open_host_without_logins_is_refused(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("AUTH", "ALLOW_UNAUTHENTICATED")}
    proc = subprocess.run(
        _make_server(tmp_path, "HOST=0.0.0.0", f"PORT={port}"), capture_output=True, text=True, env=env, timeout=60
    )
    assert proc.returncode != 0
    assert "HOST=0.0.0.0 is reachable from other machines and AUTH is off" in proc.stderr
    assert "AUTH=1" in proc.stderr and "ALLOW_UNAUTHENTICATED=1" in proc.stderr
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", port)) != 0  # nothing was started
    assert not (tmp_path / "mlflow.db").exists()


def test_the_server_answers_its_own_host_and_origins_only(tmp_path):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        _make_server(tmp_path, "HOST=127.0.0.1", f"PORT={port}"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # make and the server it starts: stopped together below
    )
    try:
        deadline = time.monotonic() + 120
        while _status_or_none(f"{base}/health") != 200:
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()[-2000:]
            time.sleep(0.5)
        api = f"{base}/api/2.0/mlflow/experiments/search?max_results=1"
        assert _status(api) == 200
        assert _status(api, Host="attacker.example") == 403  # DNS rebinding
        assert _status(api, Host=f"localhost:{port}") == 200
        # A foreign web page may not change anything; the server's own UI may.
        create = f"{base}/api/2.0/mlflow/experiments/create"
        assert _status(create, b'{"name": "from-elsewhere"}', Origin="http://attacker.example") == 403
        assert _status(create, b'{"name": "from-the-ui"}', Origin=f"http://localhost:{port}") == 200
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


def _status_or_none(url: str) -> int | None:
    try:
        return _status(url)
    except OSError:
        return None
