"""The gateway as users run it: `python -m devhost` in a subprocess, over a real socket."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import requests

from devhost.azurite import free_port, isolated_env

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class GatewayServer:
    url: str
    env: dict[str, str]
    process: subprocess.Popen[bytes]

    @classmethod
    def start(cls, env: dict[str, str], *args: str, port: int | None = None) -> GatewayServer:
        """``python -m devhost`` on ``port`` (a free one when None: a test that must know the URL first picks it)."""
        port = port or free_port()
        full_env = {**os.environ, **env, "PYTHONUNBUFFERED": "1"}
        settings = "tests/empty.settings.json"  # the environment alone configures the host
        command = [sys.executable, "-m", "devhost", "--port", str(port), "--settings", settings, *args]
        logs = ROOT / ".pytest_cache"
        logs.mkdir(exist_ok=True)
        log = open(logs / f"devhost-{port}.log", "wb")  # noqa: SIM115 - closed in stop()
        process = subprocess.Popen(command, cwd=ROOT, env=full_env, stdout=log, stderr=subprocess.STDOUT)
        server = cls(f"http://127.0.0.1:{port}", env, process)
        server._log = log
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"devhost exited with {process.returncode}: see {log.name}")
            try:
                requests.get(f"{server.url}/api/health", timeout=2)
                return server
            except requests.ConnectionError:
                time.sleep(0.2)
        server.stop()
        raise RuntimeError("devhost did not start within 60 s")

    def kill(self) -> None:
        """SIGKILL, as a crash or a recycled instance ends it: nothing is handed back or finished."""
        self.process.kill()
        self.process.wait()
        self._log.close()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()

    def log_text(self) -> str:
        """Everything the host process wrote to stdout and stderr so far."""
        return Path(self._log.name).read_text(encoding="utf-8", errors="replace")

    def post(self, path: str, json: object = None, *, key: str | None = None, **kwargs: object) -> requests.Response:
        headers = dict(kwargs.pop("headers", {}) or {})  # type: ignore[arg-type]
        if key is not None:
            headers.setdefault("Authorization", f"Bearer {key}")
        return requests.post(self.url + path, json=json, headers=headers, timeout=30, **kwargs)  # type: ignore[arg-type]

    def get(self, path: str, *, key: str | None = None, **kwargs: object) -> requests.Response:
        headers = dict(kwargs.pop("headers", {}) or {})  # type: ignore[arg-type]
        if key is not None:
            headers.setdefault("Authorization", f"Bearer {key}")
        return requests.get(self.url + path, headers=headers, timeout=30, **kwargs)  # type: ignore[arg-type]


NEVER = "0 0 0 1 1 *"  # an NCRONTAB schedule that fires at new year only: the sweep stays out of a test's way


def server_env(storage_connection: str, **overrides: str) -> dict[str, str]:
    """Settings for a gateway subprocess: isolated storage names, the outbox, a 1 s key cache, no sweep, no
    missing-receipt check and no retention (their timers fire at new year only)."""
    defaults = {"SMS_DEFAULT_SENDER": "+15005550006", "SMS_API_KEY_CACHE_SECONDS": "1", "SMS_PROVIDER": "outbox",
                "SMS_SWEEP_SCHEDULE": NEVER, "SMS_RECEIPT_CHECK_SCHEDULE": NEVER,
                "SMS_RETENTION_SCHEDULE": NEVER}
    return isolated_env(storage_connection, **{**defaults, **overrides})
