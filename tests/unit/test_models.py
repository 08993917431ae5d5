import uuid
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from gateway import jsv
from gateway.models import EMPTY_GUID, CommResponse, SMSSend, parse_guid
from tests.samples import SEED_REQUEST

GUID = uuid.UUID("3f2504e0-4f89-11d3-9a0c-0305e82c3301")


@pytest.mark.parametrize(
    "text",
    [
        "3f2504e04f8911d39a0c0305e82c3301",
        "3f2504e0-4f89-11d3-9a0c-0305e82c3301",
        "{3f2504e0-4f89-11d3-9a0c-0305e82c3301}",
        "(3f2504e0-4f89-11d3-9a0c-0305e82c3301)",
        "3F2504E0-4F89-11D3-9A0C-0305E82C3301",
    ],
)
def test_guid_forms_n_d_b_p_are_accepted(text: str) -> None:
    assert parse_guid(text) == GUID


def test_whitespace_around_a_guid_is_skipped_and_empty_means_none() -> None:
    assert parse_guid(" \t3f2504e04f8911d39a0c0305e82c3301\r\n") == GUID
    assert parse_guid("") is None and parse_guid("  ") is None


@pytest.mark.parametrize(
    "text",
    [
        "zz",
        "3f2504e04f8911d39a0c0305e82c330",  # 31 digits
        "{3f2504e04f8911d39a0c0305e82c3301",  # unclosed
        "{3f2504e04f8911d39a0c0305e82c3301}",  # braces take the dashed form only, as in .NET
        "{3f2504e0-4f89-11d3-9a0c-0305e82c3301)",  # mismatched
        "0x3f2504e04f8911d39a0c0305e82c33",  # int()'s prefix, 36 characters with the hyphens below
        "0x3f2504e04f8911d39a0c0305e82c----",
        "3f2504e0-4f8911d3-9a0c-0305-e82c3301",  # hyphens in the wrong places
        "3-f-2-5-04e04f8911d39a0c0305e82c3301",
        "3f2504e0_4f89_11d3_9a0c_0305e82c3301",
        "\u0663f2504e04f8911d39a0c0305e82c3301",  # an Arabic-Indic digit three
        "\u0661" * 32,
        "\uff13f2504e04f8911d39a0c0305e82c3301",  # a fullwidth three
        "urn:uuid:3f2504e0-4f89-11d3-9a0c-0305e82c3301",
        "{0x3f2504e0,0x4f89,0x11d3,{0x9a,0x0c,0x03,0x05,0xe8,0x2c,0x33,0x01}}",  # .NET's X form
        "3f2504e04f8911d39a0c0305e82c3301\x00",
    ],
)
def test_malformed_guids_are_rejected(text: str) -> None:
    with pytest.raises(ValueError) as raised:
        parse_guid(text)
    assert text not in str(raised.value)  # a value the client sent is never echoed back


@pytest.mark.parametrize(
    "request_body",
    [
        {"SMSModel": {"MessageBody": "half a pair \ud800"}},
        {"SMSModel": {"Notes": "\udfff"}},
        {"SMSModel": {"From": {"Name": "a\udc00\ud800b"}}},  # a pair in the wrong order is two lone halves
        {"SMSModel": {"To": [{"PhoneNumber": "+447911123456"}, {"Name": "\ud83d"}]}},
        {"SMSModel": {"To": [{"PhoneNumber": "+44791112345\ud800"}]}},
    ],
)
def test_a_lone_surrogate_in_any_string_is_refused_naming_the_field(request_body: dict) -> None:
    with pytest.raises(ValidationError) as raised:
        SMSSend.model_validate(request_body)
    [error] = raised.value.errors()
    assert "unpaired UTF-16 surrogate" in error["msg"]
    assert error["loc"][-1] in {"MessageBody", "Notes", "Name", "PhoneNumber"}


def test_surrogate_pairs_and_unknown_properties_are_not_refused() -> None:
    request = SMSSend.model_validate({"SMSModel": {"MessageBody": "smile \U0001f600", "X\ud800": "\ud800"}})
    assert request.SMSModel is not None and request.SMSModel.MessageBody == "smile \U0001f600"


def test_property_names_match_case_insensitively_and_unknown_ones_are_ignored() -> None:
    request = SMSSend.model_validate(
        {
            "smsModel": {"FROM": {"phonenumber": "+61412345678"}, "to": [{"PHONENUMBER": "+447911123456"}],
                         "messagebody": "Hi", "licenseeId": str(GUID), "Unexpected": 1},
            "createcommunicationreferencesimmediately": "true",
        }
    )
    assert request.SMSModel is not None
    assert request.SMSModel.From is not None and request.SMSModel.From.PhoneNumber == "+61412345678"
    assert request.SMSModel.To is not None and request.SMSModel.To[0].PhoneNumber == "+447911123456"
    assert request.SMSModel.LicenseeId == GUID
    assert request.CreateCommunicationReferencesImmediately is True


def test_seed_request_as_json_is_accepted_unchanged() -> None:
    request = SMSSend.model_validate(SEED_REQUEST)
    assert request.SMSModel is not None
    assert request.SMSModel.LicenseeId == EMPTY_GUID
    assert request.SMSModel.To and request.SMSModel.To[0].ContactId == GUID


def test_output_is_pascal_case_with_n_form_guids_and_no_nulls() -> None:
    wire = CommResponse(CommId=GUID, Status=True, Message=None).to_wire()
    assert wire == {"CommId": "3f2504e04f8911d39a0c0305e82c3301", "Status": True}


def test_empty_guid_and_false_are_still_written() -> None:
    assert CommResponse(CommId=EMPTY_GUID).to_wire() == {"CommId": "0" * 32, "Status": False}


def test_wrong_types_fail_validation() -> None:
    with pytest.raises(ValidationError):
        SMSSend.model_validate({"SMSModel": {"To": "not a list"}})


MOMENT = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    "text",
    [
        "2026-12-01T09:30:00Z",
        "2026-12-01T09:30:00z",
        "2026-12-01T10:30:00+01:00",
        "2026-12-01T04:30:00-05:00",
        "2026-12-01T09:30:00",  # no offset: UTC, as ServiceStack on Azure (UTC servers) reads it
        "2026-12-01T09:30:00.0000000Z",  # .NET's seven fractional digits (JSV, ServiceStack's ISO 8601)
        " 2026-12-01T09:30:00Z ",
        f"/Date({int(MOMENT.timestamp() * 1000)})/",  # ServiceStack.Text's default JSON DateTime
        f"/Date({int(MOMENT.timestamp() * 1000)}+0100)/",  # its offset is the writer's zone: the instant is the ms
        f"/Date({int(MOMENT.timestamp() * 1000)}-0500)/",
    ],
)
def test_a_send_at_in_every_form_a_servicestack_client_writes_is_the_same_instant_in_utc(text: str) -> None:
    send_at = SMSSend.model_validate({"SendAt": text}).SendAt
    assert send_at == MOMENT and send_at.utcoffset() == timedelta(0)


def test_a_send_at_from_a_jsv_body_is_read_as_in_json() -> None:
    parsed = SMSSend.model_validate(jsv.loads("{SendAt:2026-12-01T10:30:00.0000000+01:00,ValidUntil:"
                                              "2026-12-02T09:30:00Z,SMSModel:{MessageBody:Hi}}"))
    assert parsed.SendAt == MOMENT and parsed.ValidUntil == MOMENT + timedelta(days=1)


@pytest.mark.parametrize("text", ["tomorrow", "2026-13-01T00:00:00Z", "/Date(abc)/", "01/12/2026 09:30"])
def test_a_send_at_that_is_not_a_date_is_refused_without_repeating_it(text: str) -> None:
    with pytest.raises(ValidationError) as error:
        SMSSend.model_validate({"SendAt": text})
    message = error.value.errors()[0]["msg"]
    assert "is not a date and time" in message or "datetime" in message
    assert text not in message


def test_an_empty_send_at_means_now() -> None:
    assert SMSSend.model_validate({"SendAt": ""}).SendAt is None
    assert SMSSend.model_validate({}).SendAt is None
