"""Resending a communication to the recipients it did not reach (docs/messages.md, "Resend").

``POST /api/sms/{CommId}/resend`` makes a NEW communication of the recipients the status shows ``Failed``,
``Undelivered`` or ``Expired`` (a receipt's word counts: ``status.recipient_status``), with the original's
sender, body, flags and links, and ``ResentFrom`` naming the original; the original lists it in ``ResentAs``.

Write order: the new communication first (its accept is the commit point, and it names the original), the
original's ``ResentAs`` second, the queue message last. A crash after the first write leaves a resend that
the sweep delivers and that names its original, while the original does not list it yet; the POST's retry
finds that resend by its key and completes the link instead of making another. The key is the client's
``Idempotency-Key`` or, without one, one derived from the original and how many resends it lists
(``implicit_key``), so two POSTs at the same moment, or a retry after such a crash, make one resend.

A number an earlier resend of the original already carried is not resent again from the original: resend that
resend instead (``AlreadyResent``), so a retried or repeated POST never reaches a phone twice.
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from collections.abc import Sequence
from datetime import datetime

from azure.core.exceptions import AzureError

from gateway.errors import RETRY_AFTER_SECONDS, ApiError
from gateway.idempotency import CANDIDATES, WINDOW, Accepted, accept_once
from gateway.redact import describe
from gateway.references import keyed_reference
from gateway.status import own_snapshot, path_comm_id, recipient_status
from gateway.storage import (
    CommStatus,
    Communication,
    CommunicationStore,
    ConcurrentUpdate,
    Recipient,
    RecipientSpec,
    RecipientState,
    Snapshot,
    comm_id_for,
)

log = logging.getLogger("gateway.resend")

"""Writes what must exist before a communication's header (its index rows) and hands the communication back."""
RESENDABLE = frozenset({RecipientState.FAILED, RecipientState.UNDELIVERED, RecipientState.EXPIRED})
"""The shown states a resend takes a recipient in: not OptedOut (the list still holds it), not Canceled (the
client stopped it), not Sent or Delivered (it arrived, or may yet), not open (Pending, Sending)."""


def resendable(snapshot: Snapshot) -> list[Recipient]:
    """The recipients whose shown state (a final receipt's, else delivery's) is Failed, Undelivered or Expired."""
    return [recipient for recipient in snapshot.all_recipients()
            if recipient_status(recipient, snapshot.receipts.get(recipient.index)).Status in RESENDABLE]


def still_open(snapshot: Snapshot) -> int:
    """How many recipients delivery has not finished with (Pending or Sending)."""
    return sum(not recipient.status.is_final for recipient in snapshot.all_recipients())


def not_yet_resent(recipients: Sequence[Recipient], resent_numbers: set[str]) -> list[RecipientSpec]:
    """The recipients to resend: those whose number no earlier resend of the original carried, as accepted."""
    return [RecipientSpec(r.phone_number, r.name, r.contact_id) for r in recipients
            if r.phone_number not in resent_numbers]


def resend_of(original: Communication, reference: str, recipients: Sequence[RecipientSpec]) -> Communication:
    """The new communication: the original's sender, body as stored, flags, notes and links, sent now.

    Not its SendAt or ValidUntil: a resend goes now, and the original's validity may be what ended it. Its
    SmartEncoded is the original's, since the body is the one smart encoding made.
    """
    return Communication(
        comm_id=comm_id_for(original.licensee_id, reference),
        licensee_id=original.licensee_id,
        reference=reference,
        sender=original.sender,
        sender_name=original.sender_name,
        sender_contact_id=original.sender_contact_id,
        body=original.body,
        recipients_spec=list(recipients),
        reply_is_allowed=original.reply_is_allowed,
        reply_is_required=original.reply_is_required,
        notes=original.notes,
        linked_object_id=original.linked_object_id,
        suite_id=original.suite_id,
        status=CommStatus.QUEUED,
        smart_encoded=original.smart_encoded,
        resent_from=original.comm_id,
    )


def resend_hash(original_id: uuid.UUID) -> str:
    """What makes two resend requests "the same" for one Idempotency-Key: the communication they resend."""
    canonical = json.dumps({"version": 1, "resend": original_id.hex}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()


def implicit_key(original: Communication) -> str:
    """The key of a resend sent without one: the original and its resends so far (newlines: no client key has
    them), so a POST repeated before the link is written finds the resend the first one stored."""
    return f"resend\n{original.comm_id.hex}\n{len(original.resent_as)}"


def keyed_ids(licensee_id: uuid.UUID, key: str) -> list[uuid.UUID]:
    """Every CommId a request with this Idempotency-Key may have taken (``gateway.idempotency``)."""
    return [comm_id_for(licensee_id, keyed_reference(licensee_id, key, candidate)) for candidate in range(CANDIDATES)]


def resend_message(comm: Communication) -> str:
    """The ``CommResponse`` Message of a resend."""
    count = len(comm.recipients_spec)
    original = comm.resent_from.hex if comm.resent_from is not None else "?"
    return f"Resends {count} recipient{'' if count == 1 else 's'} of {original}; queued for delivery"


def nothing_to_resend(comm_id: uuid.UUID, open_count: int) -> ApiError:
    message = f"No recipient of {comm_id.hex} ended Failed, Undelivered or Expired; nothing to resend"
    if open_count:
        message += f" ({open_count} still to be sent)"
    return ApiError(409, "NothingToResend", message)


def already_resent(original: Communication) -> ApiError:
    latest = original.resent_as[-1].hex if original.resent_as else "its resend"
    return ApiError(409, "AlreadyResent", f"Every recipient of {original.comm_id.hex} to resend was resent already, "
                    f"latest as {latest}; resend that one to reach those it did not")


def resend_outcome_unknown() -> ApiError:
    return ApiError(503, "OutcomeUnknown", "Storage did not answer in time, so whether the resend was accepted is "
                    "unknown. Retry it (with the same Idempotency-Key, if it had one): a retry finds the resend if it "
                    "was stored, and nobody is sent the SMS twice", headers={"Retry-After": RETRY_AFTER_SECONDS})


def accept_resend(store: CommunicationStore, licensee_id: uuid.UUID, comm_id: str, key: str | None, *,
                  now: datetime) -> Accepted:
    """Store the resend of ``comm_id`` (or find the one this request stored before) and link it to the original.

    404 as the status routes answer it; 409 NothingToResend or AlreadyResent; ``AcceptOutcomeUnknown`` from the
    store when the accepting write got no answer. Not queued here: the caller queues a fresh one. The store lists it
    in its indexes before its header, as any accept (``gateway/listing.py``).
    """
    snapshot = own_snapshot(store, licensee_id, path_comm_id(comm_id))
    original = snapshot.communication
    if key is not None:
        earlier = _listed_under_key(store, original, key, now)
        if earlier is not None:
            return Accepted(earlier, fresh=False)
    failed = resendable(snapshot)
    if not failed:
        raise nothing_to_resend(original.comm_id, still_open(snapshot))
    chosen = not_yet_resent(failed, _resent_numbers(store, original))
    if not chosen:
        raise already_resent(original)
    accepted = accept_once(store, licensee_id, key if key is not None else implicit_key(original),
                           resend_hash(original.comm_id),
                           lambda reference: (resend_of(original, reference, chosen), []), now=now)
    _link(store, original.comm_id, accepted.communication.comm_id)
    return accepted


def _listed_under_key(store: CommunicationStore, original: Communication, key: str,
                      now: datetime) -> Communication | None:
    """The resend the original lists that this Idempotency-Key made within its window, if any: its retry answers
    that one (after the window the key is a new one, as for a send)."""
    for candidate in keyed_ids(original.licensee_id, key):
        if candidate in original.resent_as:
            claim, header = store.load_claim(candidate)
            if claim is not None and claim.key == key and now - claim.created_at < WINDOW:
                return header
    return None


def _resent_numbers(store: CommunicationStore, original: Communication) -> set[str]:
    """Every number the original's earlier resends carried (a point read per resend it lists)."""
    numbers: set[str] = set()
    for resend_id in original.resent_as:
        resend = store.load_header(resend_id)
        if resend is not None:
            numbers.update(spec.phone_number for spec in resend.recipients_spec)
    return numbers


def _link(store: CommunicationStore, original_id: uuid.UUID, resend_id: uuid.UUID) -> None:
    """List the resend in the original's ResentAs. The resend is stored and names its original already, so a
    failure here is logged, not answered: the POST's retry, or the next resend of the original without a key (its
    implicit key finds this one), completes it."""
    try:
        store.add_resent_as(original_id, resend_id)
    except (AzureError, ConcurrentUpdate) as error:
        log.warning("resend %s stored but not yet listed by %s: %s", resend_id.hex, original_id.hex, describe(error))
