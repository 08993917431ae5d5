"""`python -m gateway keys create|list|revoke` and `outbox`: administration from a shell.

Reads the same settings as the app (the environment, then local.settings.json), so it
works against Azurite locally and against the real account with an identity in Azure.
"""

from __future__ import annotations

import argparse
import sys
import uuid
from collections.abc import Sequence

from azure.core.exceptions import ResourceNotFoundError

from gateway.auth import ApiKeyStore
from gateway.connections import StorageClients
from gateway.models import EMPTY_GUID, parse_guid
from gateway.settings import ConfigError, Settings, load_local_settings


def _connect() -> tuple[Settings, StorageClients]:
    load_local_settings("local.settings.json")
    settings = Settings.from_env()
    return settings, StorageClients.create(settings.storage)


def _keys(args: argparse.Namespace) -> int:
    settings, clients = _connect()
    store = ApiKeyStore(clients.tables, settings.api_keys_table)
    store.ensure_table()
    if args.command == "create":
        record, secret = store.create(args.licensee, args.name)
        print(f"Created key {record.key_id} '{record.name}' for licensee {record.licensee_id.hex}.")
        print("Store it now: it is shown only once.")
        print(secret)
        return 0
    if args.command == "list":
        print(f"{'KEY ID':<14}{'LICENSEE':<34}{'STATE':<9}NAME")
        for record in store.list():
            state = "revoked" if record.revoked else "active"
            print(f"{record.key_id:<14}{record.licensee_id.hex:<34}{state:<9}{record.name}")
        return 0
    record = store.revoke(args.key_id)
    if record is None:
        print(f"error: no single key has id {args.key_id!r}", file=sys.stderr)
        return 1
    print(f"Revoked key {record.key_id} '{record.name}'.")
    return 0


def _outbox(args: argparse.Namespace) -> int:
    """The newest would-be SMS the outbox provider recorded."""
    settings, clients = _connect()
    table = clients.tables.get_table_client(settings.outbox_table)
    try:
        rows = sorted(table.list_entities(), key=lambda row: row["SentAt"], reverse=True)[: args.limit]
    except ResourceNotFoundError:
        rows = []
    if not rows:
        print("The outbox is empty.")
    for row in rows:
        print(f"{row['SentAt']:%Y-%m-%d %H:%M:%S}  comm {row['PartitionKey']}  {row['From']} -> {row['To']}: "
              f"{row['Body']!r}")
    return 0


def _licensee(text: str) -> uuid.UUID:
    try:
        value = parse_guid(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    if value is None or value == EMPTY_GUID:
        raise argparse.ArgumentTypeError("the licensee must be a non-empty Guid")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gateway", description="SMS gateway administration")
    commands = parser.add_subparsers(dest="area", required=True)
    keys = commands.add_parser("keys", help="manage API keys").add_subparsers(dest="command", required=True)
    create = keys.add_parser("create", help="create a key; prints it once, on the last line")
    create.add_argument("--licensee", required=True, type=_licensee, help="the licensee the key acts for (Guid)")
    create.add_argument("--name", required=True, help="who or what the key is for")
    keys.add_parser("list", help="list keys (never their secrets)")
    revoke = keys.add_parser("revoke", help="revoke a key by its id")
    revoke.add_argument("key_id", help="the id shown by `keys list`")
    outbox = commands.add_parser("outbox", help="show what the outbox provider would have sent")
    outbox.add_argument("--limit", type=int, default=20, help="how many of the newest to show")
    args = parser.parse_args(argv)

    try:
        return _keys(args) if args.area == "keys" else _outbox(args)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
