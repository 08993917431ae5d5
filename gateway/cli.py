"""`python -m gateway keys create|list|revoke`, `optouts list|add|remove`, `inbound unattributed`,
`webhooks set|show|delete`, `outbox` and `open-work backfill`: administration from a shell.

Reads the same settings as the app (the environment, then local.settings.json), so it
works against Azurite locally and against the real account with an identity in Azure.
"""

from __future__ import annotations

import argparse
import sys
import uuid
from collections.abc import Sequence
from datetime import timedelta

from azure.core.exceptions import ResourceNotFoundError

from gateway.auth import ApiKeyStore
from gateway.connections import StorageClients
from gateway.inbound import InboundStore
from gateway.models import EMPTY_GUID, parse_guid
from gateway.open_work import OpenWork
from gateway.optouts import OptOutList
from gateway.redact import mask_phone
from gateway.runtime import webhook_endpoints_for
from gateway.settings import ConfigError, Settings, load_local_settings
from gateway.storage import CommunicationStore, utcnow
from gateway.validation import normalise_number
from gateway.webhook_urls import RefusedUrl

OPERATOR_SOURCE = "cli"


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


def _optouts(args: argparse.Namespace) -> int:
    """A licensee's opt-out list, for operators: what the licensee's own API routes show and change."""
    settings, clients = _connect()
    optouts = OptOutList(clients.tables, settings.optouts_table)
    optouts.ensure_table()
    if args.command == "list":
        entries = optouts.list(args.licensee)
        print(f"{'NUMBER':<18}{'SINCE (UTC)':<21}{'SOURCE':<10}REASON")
        for entry in entries:
            print(f"{entry.number:<18}{entry.at:%Y-%m-%d %H:%M:%S}  {entry.source:<10}{entry.reason}")
        print(f"{len(entries)} number(s) opted out for licensee {args.licensee.hex}.")
        return 0
    number = normalise_number(args.number.strip(), settings.default_region)
    if number is None:
        print("error: not a valid phone number (international, + and country code, or national with "
              "SMS_DEFAULT_REGION)", file=sys.stderr)
        return 1
    if args.command == "add":
        optouts.add(args.licensee, number, reason=args.reason, source=OPERATOR_SOURCE)
        print(f"Added {mask_phone(number)} to licensee {args.licensee.hex}'s opt-out list.")
        return 0
    if optouts.find(args.licensee, number) is None:
        print(f"error: {mask_phone(number)} is not on licensee {args.licensee.hex}'s opt-out list", file=sys.stderr)
        return 1
    optouts.remove(args.licensee, number, source=OPERATOR_SOURCE)
    print(f"Removed {mask_phone(number)} from licensee {args.licensee.hex}'s opt-out list.")
    return 0


def _inbound(args: argparse.Namespace) -> int:
    """Inbound messages no licensee can see (docs/replies.md): an operator decides what becomes of them."""
    settings, clients = _connect()
    inbound = InboundStore(clients.tables, settings.inbound_table)
    inbound.ensure_table()
    rows = inbound.unattributed(utcnow() - timedelta(hours=args.hours))
    print(f"{'RECEIVED (UTC)':<21}{'PROVIDER':<10}{'MATCH':<11}{'FROM':<18}{'TO':<18}BODY")
    for row in rows:
        print(f"{row['ReceivedAt']:%Y-%m-%d %H:%M:%S}  {row['RowKey']:<10}{row.get('Match', ''):<11}"
              f"{row['From']:<18}{row['To']:<18}{row['Body']!r}")
    print(f"{len(rows)} message(s) in the last {args.hours} hour(s) attributed to no licensee.")
    return 0


def _webhooks(args: argparse.Namespace) -> int:
    """A licensee's webhook, for operators: what the licensee's own PUT, GET and DELETE /api/webhook do."""
    settings, clients = _connect()
    webhooks = webhook_endpoints_for(settings, clients.tables)
    webhooks.ensure_table()
    licensee = args.licensee.hex
    if args.command == "set":
        try:
            endpoint = webhooks.set(args.licensee, args.url.strip())
        except RefusedUrl as refused:
            print(f"error: the URL is refused: {refused}", file=sys.stderr)
            return 1
        print(f"Licensee {licensee}'s events now go to {endpoint.url}.")
        if endpoint.previous_secret is not None:
            print("The previous secret keeps signing beside the new one for 24 hours.")
        print("Give the licensee this signing secret now: it is shown only once.")
        print(endpoint.secret)
        return 0
    endpoint = webhooks.find(args.licensee) if args.command == "show" else webhooks.delete(args.licensee)
    if endpoint is None:
        print(f"error: licensee {licensee} has no webhook", file=sys.stderr)
        return 1
    if args.command == "show":
        print(f"Licensee {licensee}'s events go to {endpoint.url}.")
    else:
        print(f"Removed licensee {licensee}'s webhook {endpoint.url}; no more events are posted to it.")
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


def _open_work(args: argparse.Namespace) -> int:
    """List every communication holding open work in the open-work index: once, after upgrading from a version
    without it (docs/delivery.md, "What the sweep costs"). A scan of the communications table; rows due now."""
    settings, clients = _connect()
    quiet = timedelta(seconds=settings.sweep_after_seconds)
    open_work = OpenWork(clients.worker_tables, settings.open_work_table, quiet)
    open_work.ensure_table()
    store = CommunicationStore(clients.worker_tables, settings.communications_table)
    listed = 0
    for comm_id in store.unlisted_work():
        open_work.open(comm_id, utcnow() - open_work.quiet)  # due at once: the next sweep looks at it
        listed += 1
    print(f"Listed {listed} communication(s) with open work; the next sweep looks at each.")
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
    optouts = commands.add_parser("optouts", help="a licensee's opt-out list").add_subparsers(dest="command",
                                                                                               required=True)
    for name, what in (("list", "list the numbers, with when and why"), ("add", "add a number"),
                       ("remove", "take a number off")):
        command = optouts.add_parser(name, help=what)
        command.add_argument("--licensee", required=True, type=_licensee, help="the licensee (Guid)")
        if name != "list":
            command.add_argument("number", help="the phone number, international (+...) or national")
        if name == "add":
            command.add_argument("--reason", default="operator", help="why, as the list shows it")
    inbound = commands.add_parser("inbound", help="inbound messages").add_subparsers(dest="command", required=True)
    unattributed = inbound.add_parser("unattributed", help="replies no licensee is shown: unmatched or ambiguous")
    unattributed.add_argument("--hours", type=int, default=72, help="how far back to look (default 72)")
    webhooks = commands.add_parser("webhooks", help="a licensee's webhook").add_subparsers(dest="command",
                                                                                           required=True)
    for name, what in (("set", "register a URL with a new secret; prints the secret once, on the last line"),
                       ("show", "show the URL (never the secret)"), ("delete", "remove the webhook")):
        command = webhooks.add_parser(name, help=what)
        command.add_argument("--licensee", required=True, type=_licensee, help="the licensee (Guid)")
        if name == "set":
            command.add_argument("--url", required=True, help="where events are posted (https in production)")
    outbox = commands.add_parser("outbox", help="show what the outbox provider would have sent")
    outbox.add_argument("--limit", type=int, default=20, help="how many of the newest to show")
    backfill = commands.add_parser("open-work", help="the sweep's index of open work")
    backfill.add_subparsers(dest="command", required=True).add_parser(
        "backfill", help="list the communications with open work (once, after upgrading to the index)")
    args = parser.parse_args(argv)

    try:
        run = {"keys": _keys, "optouts": _optouts, "inbound": _inbound, "webhooks": _webhooks,
               "outbox": _outbox, "open-work": _open_work}[args.area]
        return run(args)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
