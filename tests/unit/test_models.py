import uuid

import pytest
from pydantic import ValidationError

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


@pytest.mark.parametrize("text", ["zz", "3f2504e04f8911d39a0c0305e82c330", "{3f2504e04f8911d39a0c0305e82c3301"])
def test_malformed_guids_are_rejected(text: str) -> None:
    with pytest.raises(ValueError):
        parse_guid(text)


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
