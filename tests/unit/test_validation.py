import pytest

from gateway.errors import ApiError
from gateway.models import SMSSend
from gateway.settings import Settings
from gateway.validation import can_receive_replies, normalise_number, validate_send
from tests.samples import send_body

ENV = {"AzureWebJobsStorage": "UseDevelopmentStorage=true", "SMS_DEFAULT_SENDER": "+15005550006"}


def settings(**overrides: str) -> Settings:
    return Settings.from_env({**ENV, **overrides})


def errors_of(body: dict, config: Settings | None = None) -> list[tuple[str, str]]:
    with pytest.raises(ApiError) as caught:
        validate_send(SMSSend.model_validate(body), config or settings())
    assert caught.value.status == 400
    first = caught.value.errors[0]
    assert (caught.value.error_code, caught.value.message) == (first.error_code, first.message)
    return [(error.field_name, error.error_code) for error in caught.value.errors]


def test_missing_sms_model() -> None:
    assert errors_of({"CreateCommunicationReferencesImmediately": True}) == [("SMSModel", "NotNull")]


def test_no_recipients() -> None:
    body = send_body()
    body["SMSModel"]["To"] = []
    assert errors_of(body) == [("SMSModel.To", "NotEmpty")]


def test_recipient_without_phone_number_has_indexed_path() -> None:
    body = send_body("+447911123456")
    body["SMSModel"]["To"].append({"Name": "nobody"})
    assert errors_of(body) == [("SMSModel.To[1].PhoneNumber", "NotEmpty")]


def test_unparseable_number() -> None:
    assert errors_of(send_body("+44 12")) == [("SMSModel.To[0].PhoneNumber", "InvalidPhoneNumber")]


def test_national_number_needs_a_default_region() -> None:
    assert errors_of(send_body("0412 345 678")) == [("SMSModel.To[0].PhoneNumber", "InvalidPhoneNumber")]
    valid = validate_send(SMSSend.model_validate(send_body("0412 345 678")), settings(SMS_DEFAULT_REGION="AU"))
    assert [r.phone_number for r in valid.recipients] == ["+61412345678"]


@pytest.mark.parametrize("text", ["", "   \n\t"])
def test_empty_or_whitespace_body(text: str) -> None:
    assert errors_of(send_body(body=text)) == [("SMSModel.MessageBody", "NotEmpty")]


def test_body_over_the_configured_limit() -> None:
    assert errors_of(send_body(body="x" * 1601)) == [("SMSModel.MessageBody", "MaximumLength")]
    validate_send(SMSSend.model_validate(send_body(body="x" * 1600)), settings(SMS_MAX_SEGMENTS="11"))
    assert errors_of(send_body(body="x" * 11), settings(SMS_MAX_BODY_LENGTH="10")) == [
        ("SMSModel.MessageBody", "MaximumLength")
    ]


@pytest.mark.parametrize(("fits", "over", "said"), [
    ("x" * 1530, "x" * 1531, "It takes 11 in GSM-7 (1531 septets)"),
    ("\u0436" * 670, "\u0436" * 671, "It takes 11 in UCS-2 (671 UTF-16 units)"),
    ("{" * 760, "{" * 761, "It takes 11 in GSM-7 (1522 septets)"),  # 76 a part: an escape pair is never split
])
def test_a_body_over_the_segment_limit_is_refused_with_its_count_encoding_and_limit(fits: str, over: str,
                                                                                    said: str) -> None:
    validate_send(SMSSend.model_validate(send_body(body=fits)), settings())
    with pytest.raises(ApiError) as caught:
        validate_send(SMSSend.model_validate(send_body(body=over)), settings())
    assert [(e.field_name, e.error_code) for e in caught.value.errors] == [("SMSModel.MessageBody", "TooManySegments")]
    assert caught.value.message == f"'Message Body' must fit in 10 segments or fewer. {said}."
    assert errors_of(send_body(body="x" * 161), settings(SMS_MAX_SEGMENTS="1")) == [
        ("SMSModel.MessageBody", "TooManySegments")]


def test_smart_encoding_replaces_look_alikes_in_the_body_to_send_and_says_so() -> None:
    valid = validate_send(SMSSend.model_validate(send_body(body="\u201cHi\u201d \u2014 it\u2019s me")), settings())
    assert (valid.body, valid.smart_encoded) == ('"Hi" - it\'s me', True)
    unchanged = validate_send(SMSSend.model_validate(send_body(body="\u201cHi\u201d \u0436")), settings())
    assert (unchanged.body, unchanged.smart_encoded) == ("\u201cHi\u201d \u0436", False)
    off = validate_send(SMSSend.model_validate(send_body(body="\u201cHi\u201d")), settings(SMS_SMART_ENCODING="false"))
    assert (off.body, off.smart_encoded) == ("\u201cHi\u201d", False)


def test_segments_are_counted_after_smart_encoding() -> None:
    body = send_body(body="\u2019" + "x" * 700)  # UCS-2: 701 units, 11 segments; GSM-7: 5
    assert validate_send(SMSSend.model_validate(body), settings()).smart_encoded
    assert errors_of(body, settings(SMS_SMART_ENCODING="false")) == [("SMSModel.MessageBody", "TooManySegments")]


def test_more_recipients_than_the_limit() -> None:
    numbers = [f"+4479111234{n:02d}" for n in range(3)]
    assert errors_of(send_body(*numbers), settings(SMS_MAX_RECIPIENTS="2")) == [("SMSModel.To", "TooManyRecipients")]
    at_limit = validate_send(SMSSend.model_validate(send_body(*numbers[:2])), settings(SMS_MAX_RECIPIENTS="2"))
    assert len(at_limit.recipients) == 2


def test_recipients_that_normalise_to_the_same_number_are_sent_once() -> None:
    body = send_body("+447911123456", "+44 7911 123456", "07911123456", "+61412345678")
    valid = validate_send(SMSSend.model_validate(body), settings(SMS_DEFAULT_REGION="GB"))
    assert [r.phone_number for r in valid.recipients] == ["+447911123456", "+61412345678"]


def test_from_is_optional_when_a_default_sender_is_configured() -> None:
    body = send_body()
    del body["SMSModel"]["From"]
    assert validate_send(SMSSend.model_validate(body), settings()).sender == "+15005550006"
    no_default = Settings.from_env({"AzureWebJobsStorage": "UseDevelopmentStorage=true"})
    assert errors_of(body, no_default) == [("SMSModel.From.PhoneNumber", "NotEmpty")]


@pytest.mark.parametrize("sender", ["ACME", "Clinic 24", "12345"])
def test_alphanumeric_sender_ids_and_short_codes_are_kept(sender: str) -> None:
    body = send_body()
    body["SMSModel"]["From"] = {"PhoneNumber": sender}
    assert validate_send(SMSSend.model_validate(body), settings()).sender == sender


@pytest.mark.parametrize(("sender", "answerable"), [("ACME", False), ("Clinic 24", False), ("12345", True),
                                                    ("+14155550123", True), ("", True)])
def test_only_numbers_and_short_codes_can_receive_replies(sender: str, answerable: bool) -> None:
    assert can_receive_replies(sender) is answerable


def test_reply_required_needs_a_sender_that_can_be_answered_given_or_by_default() -> None:
    body = send_body(ReplyIsRequired=True)
    body["SMSModel"]["From"] = {"PhoneNumber": "ACME"}
    assert errors_of(body) == [("SMSModel.From.PhoneNumber", "ReplyNotPossible")]
    del body["SMSModel"]["From"]
    with pytest.raises(ApiError) as caught:
        validate_send(SMSSend.model_validate(body), settings(SMS_DEFAULT_SENDER="ACME"))
    assert caught.value.errors[0].message.startswith("'Reply Is Required' needs a sender that can be answered. "
                                                     "The default sender 'ACME' is an alphanumeric sender id")
    assert validate_send(SMSSend.model_validate(body), settings()).reply_is_required is True
    body["SMSModel"].update(ReplyIsRequired=False, ReplyIsAllowed=True)
    assert validate_send(SMSSend.model_validate(body), settings(SMS_DEFAULT_SENDER="ACME")).sender == "ACME"


def test_all_errors_are_reported_at_once() -> None:
    body = send_body("bad", body="")
    body["SMSModel"]["To"].append({})
    assert errors_of(body) == [
        ("SMSModel.MessageBody", "NotEmpty"),
        ("SMSModel.To[0].PhoneNumber", "InvalidPhoneNumber"),
        ("SMSModel.To[1].PhoneNumber", "NotEmpty"),
    ]


def test_numbers_are_stored_in_e164() -> None:
    assert normalise_number("+44 7911 123-456", None) == "+447911123456"
    assert normalise_number("(415) 555-0123", "US") == "+14155550123"


@pytest.mark.parametrize("char", ["\x00", "\x07", "\x0b", "\x0c", "\x1b", "\x1f", "\x7f", "\x85", "\x9f"])
def test_control_characters_in_free_text_are_refused_naming_each_field(char: str) -> None:
    body = send_body(body=f"Hi{char}there", Notes=f"note{char}")
    body["SMSModel"]["From"]["Name"] = f"Front{char}desk"
    body["SMSModel"]["To"].append({"PhoneNumber": "+61412345678", "Name": f"{char}Alex"})
    assert errors_of(body) == [
        ("SMSModel.MessageBody", "InvalidCharacters"),
        ("SMSModel.From.Name", "InvalidCharacters"),
        ("SMSModel.Notes", "InvalidCharacters"),
        ("SMSModel.To[1].Name", "InvalidCharacters"),
    ]


def test_the_message_says_which_control_character_and_where() -> None:
    with pytest.raises(ApiError) as caught:
        validate_send(SMSSend.model_validate(send_body(body="Hello\x00")), settings())
    assert "U+0000 at character 6" in caught.value.message


def test_tab_line_feed_carriage_return_and_other_unicode_are_text() -> None:
    text = "Line one\r\nLine two\tindented \u2028 caf\u00e9 \U0001f600 \u00a0"
    body = send_body(body=text, Notes=text)
    body["SMSModel"]["From"]["Name"] = "Tab\tName"
    valid = validate_send(SMSSend.model_validate(body), settings())
    assert valid.body == text and valid.notes == text and valid.sender_name == "Tab\tName"


@pytest.mark.parametrize(("region", "hint"), [
    (None, "is not a valid phone number in international format (+ and country code)"),
    ("AU", "is not a valid phone number, international (+...) or national for AU"),
])
def test_an_invalid_number_is_refused_saying_what_would_do(region: str | None, hint: str) -> None:
    body = send_body("+44 12")
    body["SMSModel"]["From"] = {"PhoneNumber": "+1 555 0100 0000"}
    with pytest.raises(ApiError) as caught:
        validate_send(SMSSend.model_validate(body), settings(**({"SMS_DEFAULT_REGION": region} if region else {})))
    assert [error.message for error in caught.value.errors] == [
        f"'+1 555 0100 0000' {hint}, a short code or an alphanumeric sender id.",
        f"'+44 12' {hint}.",
    ]


def test_a_from_number_is_kept_in_e164() -> None:
    body = send_body()
    body["SMSModel"]["From"] = {"PhoneNumber": "+44 7911 123-456"}
    assert validate_send(SMSSend.model_validate(body), settings()).sender == "+447911123456"

