"""`python -m gateway` run as a user runs it: a subprocess against Azurite."""

import json
import os
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LICENSEE = uuid.UUID("11111111-2222-3333-4444-555555555555")


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """The command run from a folder of its own, so a developer's ``local.settings.json`` (``scripts/run.sh`` writes
    one in the checkout) never decides a test's settings; the checkout is on its path."""
    with tempfile.TemporaryDirectory() as folder:
        return subprocess.run([sys.executable, "-m", "gateway", *args], cwd=folder,
                              env={**os.environ, "PYTHONPATH": str(ROOT), **env},
                              capture_output=True, text=True, timeout=60)


def test_keys_create_list_revoke(storage_env, make_gateway) -> None:
    created = cli(storage_env, "keys", "create", "--licensee", str(LICENSEE), "--name", "billing system")
    assert created.returncode == 0, created.stderr
    secret = created.stdout.strip().splitlines()[-1]
    assert secret.startswith("sgk_") and len(secret) > 40

    gateway = make_gateway()
    principal = gateway.authenticator.authenticate({"authorization": f"Bearer {secret}"})
    assert principal.licensee_id == LICENSEE

    listed = cli(storage_env, "keys", "list")
    assert listed.returncode == 0
    assert "billing system" in listed.stdout and LICENSEE.hex in listed.stdout and secret not in listed.stdout
    key_id = principal.key_id
    assert key_id in listed.stdout

    revoked = cli(storage_env, "keys", "revoke", key_id)
    assert revoked.returncode == 0, revoked.stderr
    assert "revoked" in cli(storage_env, "keys", "list").stdout
    assert cli(storage_env, "keys", "revoke", "ffffffffffff").returncode == 1


def test_create_rejects_a_bad_licensee_and_missing_settings(storage_env) -> None:
    bad = cli(storage_env, "keys", "create", "--licensee", "nope", "--name", "x")
    assert bad.returncode == 2 and "Guid" in bad.stderr
    empty = cli(storage_env, "keys", "create", "--licensee", "0" * 32, "--name", "x")
    assert empty.returncode == 2
    unset = {name: "" for name in storage_env}
    missing = subprocess.run([sys.executable, "-m", "gateway", "keys", "list"], cwd="/", capture_output=True,
                             text=True, env={**os.environ, **unset, "PYTHONPATH": str(ROOT)}, timeout=60)
    assert missing.returncode == 2 and "AzureWebJobsStorage" in missing.stderr


def test_settings_come_from_local_settings_json_and_the_shell_wins(storage_env, tmp_path: Path) -> None:
    """Run from a directory holding only local.settings.json: the file supplies what the shell does not set."""
    values = {**storage_env, "SMS_TABLE_PREFIX": "NotThisOne", "SMS_API_KEY_CACHE_SECONDS": 0}
    (tmp_path / "local.settings.json").write_text(json.dumps({"IsEncrypted": False, "Values": values}))
    shell = {name: value for name, value in os.environ.items() if name not in storage_env}
    shell.update(PYTHONPATH=str(ROOT), SMS_TABLE_PREFIX=storage_env["SMS_TABLE_PREFIX"])

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "gateway", *args], cwd=tmp_path, env=shell,
                              capture_output=True, text=True, timeout=60)

    created = run("keys", "create", "--licensee", str(LICENSEE), "--name", "from the file")
    assert created.returncode == 0, created.stderr
    assert "from the file" in cli(storage_env, "keys", "list").stdout  # the shell's table prefix, the file's storage
    (tmp_path / "local.settings.json").write_text(json.dumps({"IsEncrypted": True, "Values": {}}))
    encrypted = run("keys", "list")
    assert encrypted.returncode == 2 and encrypted.stderr.startswith("error: ") and "encrypted" in encrypted.stderr


def test_open_work_backfill_lists_what_an_older_version_left_open(storage_env, make_gateway) -> None:
    from datetime import timedelta

    from gateway.storage import CommStatus, CommunicationStore, utcnow
    from tests.integration.test_storage import make_comm

    gateway = make_gateway()
    legacy = gateway.store.open_work
    older = CommunicationStore(gateway.clients.worker_tables, gateway.settings.communications_table)  # no index
    queued, sent = make_comm(1, reference="LEGACYQ001"), make_comm(1, reference="LEGACYS001")
    sent.status = CommStatus.SENT
    older.create(queued)
    older.create(sent)
    assert list(legacy.due(utcnow() + timedelta(days=1))) == []

    done = cli(storage_env, "open-work", "backfill")
    assert done.returncode == 0, done.stderr
    assert "Listed 1 communication(s)" in done.stdout
    assert [item.comm_id for item in legacy.due(utcnow())] == [queued.comm_id]  # due at once
