"""Status look-ups: a licensee reads its own communications, by CommId or by Reference.

Another licensee's communication answers 404, exactly like one that does not exist, so ids
cannot be probed across licensees.
"""

from __future__ import annotations

import uuid

from gateway.auth import Principal
from gateway.errors import not_found
from gateway.models import RecipientStatus, Reply, SMSContact, SMSStatusResponse, parse_guid
from gateway.receipts import ReceiptState, shown_state
from gateway.segments import count_segments
from gateway.storage import (
    CommunicationStore,
    ReceiptRecord,
    Recipient,
    RecipientState,
    Snapshot,
    comm_id_for,
    count_recipients,
    recipient_id_for,
)

NOT_FOUND = "No communication with that id exists for this licensee"


def path_comm_id(comm_id: str) -> uuid.UUID:
    """The CommId a route's path names; 404, as for one that does not exist, when it is not a Guid."""
    try:
        parsed = parse_guid(comm_id)
    except ValueError:
        parsed = None
    if parsed is None:
        raise not_found(NOT_FOUND)
    return parsed


def own_snapshot(store: CommunicationStore, licensee_id: uuid.UUID, comm_id: uuid.UUID) -> Snapshot:
    """The licensee's communication read whole; another licensee's answers 404 exactly like one that does not
    exist, so ids cannot be probed across licensees (the status, cancel and resend routes alike)."""
    snapshot = store.load(comm_id)
    if snapshot is None or snapshot.communication.licensee_id != licensee_id:
        raise not_found(NOT_FOUND)
    return snapshot


class StatusService:
    def __init__(self, store: CommunicationStore) -> None:
        self._store = store

    def by_id(self, principal: Principal, comm_id: str) -> SMSStatusResponse:
        return describe(own_snapshot(self._store, principal.licensee_id, path_comm_id(comm_id)))

    def snapshot(self, principal: Principal, comm_id: str) -> Snapshot:
        """The caller's communication read whole, by the CommId a path names; 404 as ``by_id`` answers it."""
        return own_snapshot(self._store, principal.licensee_id, path_comm_id(comm_id))

    def by_reference(self, principal: Principal, reference: str) -> SMSStatusResponse:
        reference = reference.strip().upper()
        if not reference.isalnum():
            raise not_found(NOT_FOUND)
        return describe(own_snapshot(self._store, principal.licensee_id,
                                     comm_id_for(principal.licensee_id, reference)))


def describe(snapshot: Snapshot) -> SMSStatusResponse:
    comm = snapshot.communication
    recipients = snapshot.all_recipients()
    counts = count_recipients(recipients)
    cost = count_segments(comm.body)
    shown = [recipient_status(r, snapshot.receipts.get(r.index)) for r in recipients]
    if comm.reply_is_required:
        replied = {reply.index for reply in snapshot.replies}
        shown = [status.model_copy(update={"Replied": r.index in replied}) for r, status in zip(recipients, shown,
                                                                                                 strict=True)]
    return SMSStatusResponse(
        CommId=comm.comm_id,
        Reference=comm.reference,
        LicenseeId=comm.licensee_id,
        Status=comm.status.value,
        From=SMSContact(Name=comm.sender_name, PhoneNumber=comm.sender, ContactId=comm.sender_contact_id),
        MessageBody=comm.body,
        Encoding=cost.encoding.value,
        Segments=cost.segments,
        ReplyIsAllowed=comm.reply_is_allowed,
        ReplyIsRequired=comm.reply_is_required,
        Notes=comm.notes,
        LinkedObjectId=comm.linked_object_id,
        SuiteId=comm.suite_id,
        RecipientCount=len(recipients),
        SentCount=counts.sent,
        FailedCount=counts.failed,
        PendingCount=counts.pending,
        DeliveredCount=sum(r.Status == RecipientState.DELIVERED for r in shown),
        UndeliveredCount=sum(r.Status == RecipientState.UNDELIVERED for r in shown),
        CanceledCount=sum(r.Status == RecipientState.CANCELED for r in shown),
        ExpiredCount=sum(r.Status == RecipientState.EXPIRED for r in shown),
        SmartEncoded=comm.smart_encoded,
        SendAt=comm.send_at,
        ValidUntil=comm.valid_until,
        ResentFrom=comm.resent_from,
        ResentAs=list(comm.resent_as),
        LastError=comm.last_error,
        CreatedAt=comm.created_at,
        UpdatedAt=comm.updated_at,
        Recipients=shown,
        Replies=[Reply(RecipientId=recipient_id_for(comm.comm_id, reply.index), From=reply.sender, To=reply.to,
                       Body=reply.body, ReceivedAt=reply.received_at) for reply in snapshot.replies],
    )


def recipient_status(r: Recipient, receipt: ReceiptRecord | None) -> RecipientStatus:
    """One recipient as shown: its delivery state, taken on by a final receipt (``receipts.shown_state``)."""
    state = ReceiptState(receipt.state) if receipt is not None and receipt.state else None
    status = shown_state(r.status, state)
    from_receipt = receipt is not None and status is not r.status
    error_code, error_message = r.error_code, r.error_message
    if from_receipt and receipt is not None and (receipt.error_code or receipt.error_message):
        error_code, error_message = receipt.error_code, receipt.error_message
    return RecipientStatus(
        RecipientId=r.recipient_id,
        Name=r.name,
        PhoneNumber=r.phone_number,
        ContactId=r.contact_id,
        Status=status.value,
        ProviderMessageId=r.provider_message_id,
        ErrorCode=error_code,
        ErrorMessage=error_message,
        Attempts=r.attempts,
        UpdatedAt=r.updated_at,
        ReceiptAt=receipt.receipt_at if state is not None and receipt is not None else None,
        Segments=r.segments if r.segments is not None else (receipt.segments if receipt is not None else None),
    )
