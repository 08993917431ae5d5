"""Run a real Azurite for tests and benchmarks: on free ports, in memory, one per test session or run.

A test that stops storage on purpose starts its own, with its data on disk so it survives a restart.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ACCOUNT = "devstoreaccount1"
# Azurite's well-known development key: public, documented by Microsoft, not a secret.
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def connection_string(blob: int, queue: int, table: int) -> str:
    return (
        f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
        f"BlobEndpoint=http://127.0.0.1:{blob}/{ACCOUNT};"
        f"QueueEndpoint=http://127.0.0.1:{queue}/{ACCOUNT};"
        f"TableEndpoint=http://127.0.0.1:{table}/{ACCOUNT};"
    )


def _wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"Azurite exited with code {process.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"Azurite did not listen on port {port} within {timeout} s")


def azurite_binary() -> str:
    local = ROOT / "node_modules" / ".bin" / "azurite"
    if local.exists():
        return str(local)
    found = shutil.which("azurite")
    if found:
        return found
    raise RuntimeError("Azurite is not installed: run `npm ci` in the repository root (scripts/test.sh does)")


@dataclass
class Azurite:
    blob_port: int
    queue_port: int
    table_port: int
    process: subprocess.Popen[bytes]
    location: Path | None = None

    @property
    def connection_string(self) -> str:
        return connection_string(self.blob_port, self.queue_port, self.table_port)

    @classmethod
    def start(cls, location: Path | None = None, ports: tuple[int, int, int] | None = None) -> Azurite:
        """Start Azurite in memory, or with its data in ``location`` (kept across a restart).

        ``ports`` (blob, queue, table) default to free ones; pass them again to restart on the same ones.
        """
        ports = ports or (free_port(), free_port(), free_port())
        persistence = ["--location", str(location)] if location is not None else ["--inMemoryPersistence"]
        command = [
            azurite_binary(),
            *persistence,
            "--skipApiVersionCheck",
            "--silent",
            "--blobHost", "127.0.0.1", "--blobPort", str(ports[0]),
            "--queueHost", "127.0.0.1", "--queuePort", str(ports[1]),
            "--tableHost", "127.0.0.1", "--tablePort", str(ports[2]),
        ]
        process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                   start_new_session=True)
        server = cls(*ports, process=process, location=location)
        try:
            for port in ports:
                _wait_for_port(port, process)
        except Exception:
            server.stop()
            raise
        return server

    def stop(self) -> None:
        """Stop Azurite: from the moment this returns it refuses connections.

        On SIGTERM Azurite writes its databases at once but exits only when clients close their
        keep-alive connections, so it is killed once that write is done (or after 2 s in memory).
        With a ``location`` the data written before the stop therefore survives a restart, as it
        would any real outage; a plain kill would lose what Azurite changed since its last autosave.
        """
        if self.process.poll() is not None:
            return
        before = self._databases()
        self.process.terminate()
        deadline = time.monotonic() + (2 if self.location is None else 10)
        while time.monotonic() < deadline and self.process.poll() is None:
            if self.location is not None and all(now != then for now, then in zip(self._databases(), before,
                                                                                   strict=True)):
                time.sleep(0.5)  # let the write finish
                break
            time.sleep(0.05)
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()

    def _databases(self) -> list[tuple[int, int] | None]:
        """(modification time, size) of the table and queue databases, to see Azurite write them."""
        if self.location is None:
            return []
        files = [self.location / f"__azurite_db_{service}__.json" for service in ("table", "queue")]
        return [(file.stat().st_mtime_ns, file.stat().st_size) if file.exists() else None for file in files]

    def restart(self) -> Azurite:
        """A new Azurite on the same ports and location (stop this one first)."""
        return Azurite.start(self.location, (self.blob_port, self.queue_port, self.table_port))


def isolated_env(connection: str, **overrides: str) -> dict[str, str]:
    """App settings on this storage with table and queue names no other test or run uses."""
    suffix = uuid.uuid4().hex[:10]
    return {
        "AzureWebJobsStorage": connection,
        "SMS_TABLE_PREFIX": f"T{suffix}",
        "SMS_QUEUE_NAME": f"q{suffix}",
        "SMS_WEBHOOK_QUEUE_NAME": f"w{suffix}",
        **overrides,
    }


def external_connection_string() -> str | None:
    """A storage account the caller already runs (TEST_STORAGE_CONNECTION), if any."""
    return os.environ.get("TEST_STORAGE_CONNECTION") or None
