"""JSV reader and writer: ServiceStack's byte-exact output, the seed page's sample, round trips, and
that malformed input only ever raises ``JsvDecodeError``."""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from gateway.jsv import MAX_DEPTH, JsvDecodeError, dumps, loads

ZERO = "0" * 32

# The "HTTP + JSV" request body from the SMSSend reference page, verbatim: tabs, the space after
# "SMSModel:" and "From:"/"To:", and the final newline.
SEED_REQUEST = """{
	SMSModel: 
	{
		From: 
		{
			Name: String,
			PhoneNumber: String,
			ContactId: 00000000000000000000000000000000
		},
		To: 
		[
			{
				Name: String,
				PhoneNumber: String,
				ContactId: 00000000000000000000000000000000
			}
		],
		MessageBody: String,
		ReplyIsAllowed: False,
		ReplyIsRequired: False,
		Notes: String,
		LinkedObjectId: 00000000000000000000000000000000,
		SuiteId: 00000000000000000000000000000000,
		LicenseeId: 00000000000000000000000000000000
	},
	CreateCommunicationReferencesImmediately: False
}
"""

# The response body from the same page.
SEED_RESPONSE = """{
	CommId: 00000000000000000000000000000000,
	Reference: String,
	Status: False,
	Message: String
}"""

SEED_CONTACT = {"Name": "String", "PhoneNumber": "String", "ContactId": ZERO}
SEED_EXPECTED = {
    "SMSModel": {
        "From": SEED_CONTACT,
        "To": [SEED_CONTACT],
        "MessageBody": "String",
        "ReplyIsAllowed": "False",
        "ReplyIsRequired": "False",
        "Notes": "String",
        "LinkedObjectId": ZERO,
        "SuiteId": ZERO,
        "LicenseeId": ZERO,
    },
    "CreateCommunicationReferencesImmediately": "False",
}


# --------------------------------------------------------------------------------------------------
# The seed page's samples


def test_seed_sample_is_verbatim() -> None:
    assert SEED_REQUEST.startswith("{\n\tSMSModel: \n\t{\n\t\tFrom: \n\t\t{\n\t\t\tName: String,")
    assert SEED_REQUEST.endswith("\tCreateCommunicationReferencesImmediately: False\n}\n")


def test_seed_request_parses() -> None:
    assert loads(SEED_REQUEST) == SEED_EXPECTED


def test_seed_response_parses() -> None:
    assert loads(SEED_RESPONSE) == {"CommId": ZERO, "Reference": "String", "Status": "False", "Message": "String"}


def test_seed_request_as_servicestack_writes_it() -> None:
    empty = uuid.UUID(int=0)
    contact = {"Name": "String", "PhoneNumber": "String", "ContactId": empty}
    request = {
        "SMSModel": {
            "From": contact,
            "To": [contact],
            "MessageBody": "String",
            "ReplyIsAllowed": False,
            "ReplyIsRequired": False,
            "Notes": "String",
            "LinkedObjectId": empty,
            "SuiteId": empty,
            "LicenseeId": empty,
        },
        "CreateCommunicationReferencesImmediately": False,
    }
    contact_jsv = "{Name:String,PhoneNumber:String,ContactId:" + ZERO + "}"
    compact = (
        f"{{SMSModel:{{From:{contact_jsv},To:[{contact_jsv}],MessageBody:String,ReplyIsAllowed:False,"
        f"ReplyIsRequired:False,Notes:String,LinkedObjectId:{ZERO},SuiteId:{ZERO},LicenseeId:{ZERO}}},"
        "CreateCommunicationReferencesImmediately:False}"
    )
    assert dumps(request) == compact
    assert loads(compact) == SEED_EXPECTED


def test_form_field_holding_a_complex_type() -> None:
    field = "{From:{Name:A,PhoneNumber:+441},To:[{PhoneNumber:+442}],MessageBody:Hi}"
    assert loads(field) == {
        "From": {"Name": "A", "PhoneNumber": "+441"},
        "To": [{"PhoneNumber": "+442"}],
        "MessageBody": "Hi",
    }


# --------------------------------------------------------------------------------------------------
# Writing: byte for byte what ServiceStack writes


class Colour(enum.Enum):
    Red = 1


class Level(enum.IntEnum):
    High = 3


class Kind(enum.StrEnum):
    Sms = "Sms"
    Odd = "a,b"


UTC = dt.UTC


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (
            {
                "CommId": uuid.UUID("3f2504e0-4f89-11d3-9a0c-0305e82c3301"),
                "Reference": "ABC",
                "Status": True,
                "Message": "Sent to 1, failed 0",
            },
            '{CommId:3f2504e04f8911d39a0c0305e82c3301,Reference:ABC,Status:True,Message:"Sent to 1, failed 0"}',
        ),
        # jsv-format.md's own examples
        ([1, 2, 3, 4, 5], "[1,2,3,4,5]"),
        ({"A": 1, "B": 2, "C": 3, "D": 4}, "{A:1,B:2,C:3,D:4}"),
        ({"Foo": "Bar", "Greet": "Hello World!"}, "{Foo:Bar,Greet:Hello World!}"),
        ({"Name": "Me, Junior"}, '{Name:"Me, Junior"}'),
        ({"Size": '2" x 1"'}, '{Size:"2"" x 1"""}'),
        # every escape character forces quotes
        ({"A": "a:b"}, '{A:"a:b"}'),
        ({"A": "{x}"}, '{A:"{x}"}'),
        ({"A": "[x]"}, '{A:"[x]"}'),
        ({"A": "x]"}, '{A:"x]"}'),
        ({"A": "line1\r\nline2"}, '{A:"line1\r\nline2"}'),
        ({"A": '"'}, '{A:""""}'),
        # ...and nothing else does
        ({"A": "+44 7700 900123"}, "{A:+44 7700 900123}"),
        ({"A": "tab\tinside"}, "{A:tab\tinside}"),
        ({"A": "café 日本 😀"}, "{A:café 日本 😀}"),
        # empty string, empty containers, nulls omitted, null list elements written as nothing
        ({"A": ""}, '{A:""}'),
        ({"A": [], "B": {}}, "{A:[],B:{}}"),
        ({"A": None, "B": "x", "C": None}, "{B:x}"),
        ({}, "{}"),
        (["a", None, "b"], "[a,,b]"),
        ([None], "[]"),
        # scalars
        ({"A": False, "B": 0, "C": -12, "D": 10**20}, "{A:False,B:0,C:-12,D:100000000000000000000}"),
        ({"A": Decimal("1.50"), "B": Decimal("1E+3"), "C": Decimal("-0.001")}, "{A:1.50,B:1000,C:-0.001}"),
        ({"A": uuid.UUID(int=0)}, "{A:" + ZERO + "}"),
        ({"A": b"hi!"}, "{A:aGkh}"),
        ({"A": Colour.Red, "B": Level.High, "C": Kind.Sms, "D": Kind.Odd}, '{A:Red,B:High,C:Sms,D:"a,b"}'),
        ((1, "x"), "[1,x]"),
        # keys are written as given, quoted only if they need it (as ServiceStack writes dictionary keys)
        ({"messageBody": 1, "Message Body": 2}, "{messageBody:1,Message Body:2}"),
        ({"a:b": 1, "": 2, 3: 4, True: 5}, '{"a:b":1,"":2,3:4,True:5}'),
        # top level
        (None, ""),
        ("", '""'),
        ("hello", "hello"),
        ("a,b", '"a,b"'),
        (True, "True"),
    ],
)
def test_writer_matches_servicestack(value: Any, expected: str) -> None:
    assert dumps(value) == expected


def test_writer_quotes_leading_and_trailing_whitespace() -> None:
    """Our one deviation: ServiceStack writes these bare, but a whitespace-skipping reader would trim them."""
    assert dumps({"A": " x", "B": "x ", "C": "\tx", "D": " ", "E": "x y"}) == '{A:" x",B:"x ",C:"\tx",D:" ",E:x y}'
    assert loads(dumps({"A": " x", "D": " "})) == {"A": " x", "D": " "}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1.0, "1"),
        (-2.5, "-2.5"),
        (0.1, "0.1"),
        (100.0, "100"),
        (0.0001, "0.0001"),
        (1e-05, "1E-05"),
        (-2.5e-07, "-2.5E-07"),
        (123456789012345.0, "123456789012345"),
        (1e15, "1E+15"),
        (1.7976931348623157e308, "1.7976931348623157E+308"),
        (0.0, "0"),
        (-0.0, "-0"),
        (float("nan"), "NaN"),
        (float("inf"), "Infinity"),
        (float("-inf"), "-Infinity"),
    ],
)
def test_floats_as_dotnet_writes_doubles(value: float, expected: str) -> None:
    assert dumps(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (dt.datetime(2024, 1, 2, tzinfo=UTC), "2024-01-02"),
        (dt.datetime(2024, 1, 2), "2024-01-02"),
        (dt.date(2024, 1, 2), "2024-01-02"),
        (dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC), "2024-01-02T03:04:05Z"),
        (dt.datetime(2024, 1, 2, 3, 4, 5, 120000, tzinfo=UTC), "2024-01-02T03:04:05.12Z"),
        (dt.datetime(2024, 1, 2, 3, 4, 5, 123456, tzinfo=UTC), "2024-01-02T03:04:05.123456Z"),
        (dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.timezone(dt.timedelta(hours=1))), "2024-01-02T03:04:05+01:00"),
        (
            dt.datetime(2024, 1, 2, 3, 4, 5, 120000, tzinfo=dt.timezone(-dt.timedelta(hours=5, minutes=30))),
            "2024-01-02T03:04:05.1200000-05:30",
        ),
        (dt.datetime(2024, 1, 2, 3, 4, 5), "2024-01-02T03:04:05"),
        (dt.datetime(2024, 1, 2, 3, 4, 5, 1), "2024-01-02T03:04:05.0000010"),
    ],
)
def test_dates_as_shortest_xsd(value: dt.datetime, expected: str) -> None:
    assert dumps(value) == expected
    # written bare, colons and all, and read back as the same text
    assert dumps({"At": value}) == "{At:" + expected + "}"
    assert loads("{At:" + expected + "}") == {"At": expected}


@pytest.mark.parametrize("value", [object(), {1, 2}, {"A": object()}, {None: 1}, {(1, 2): 1}, Decimal("NaN")])
def test_writer_rejects_what_it_cannot_write(value: Any) -> None:
    with pytest.raises((TypeError, ValueError)):
        dumps(value)


def test_writer_refuses_cycles_and_excess_depth() -> None:
    cycle: list[Any] = []
    cycle.append(cycle)
    with pytest.raises(ValueError, match="deeper"):
        dumps(cycle)
    deepest: Any = "x"
    for _ in range(MAX_DEPTH):
        deepest = [deepest]
    assert loads(dumps(deepest)) == deepest
    with pytest.raises(ValueError, match="deeper"):
        dumps([deepest])


# --------------------------------------------------------------------------------------------------
# Reading


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # whitespace between tokens is ignored, inner spaces of bare values are kept
        ("{ A : hello world , B : [ x , y z ] }", {"A": "hello world", "B": ["x", "y z"]}),
        ("\r\n{\r\n\tA:\tHello World!\r\n}\r\n", {"A": "Hello World!"}),
        ('{A:  "  padded  "  ,B:1}', {"A": "  padded  ", "B": "1"}),
        ("[ { A : 1 } , { } , [ ] ]", [{"A": "1"}, {}, []]),
        ("{Message Body:x}", {"Message Body": "x"}),
        # quoting
        ('{Size:"2"" x 1"""}', {"Size": '2" x 1"'}),
        ('{A:"",B:""""}', {"A": "", "B": '"'}),
        ('{A:"x,y}]{[:\r\n"}', {"A": "x,y}]{[:\r\n"}),
        ('{"A B":1,"":2}', {"A B": "1", "": "2"}),
        ('{"A":"x","B":["y"]}', {"A": "x", "B": ["y"]}),
        # bare values may hold ':' (dates are written bare) and end only at , } ]
        ("{At:2024-01-02T03:04:05.12Z,Url:http://x/y?a=b}", {"At": "2024-01-02T03:04:05.12Z", "Url": "http://x/y?a=b"}),
        ("[a:b,c]", ["a:b", "c"]),
        # empty containers
        ("{}", {}),
        ("[]", []),
        ("{ }", {}),
        ("[\n]", []),
        # missing values are None
        ("{A:,B:1}", {"A": None, "B": "1"}),
        ("{A:}", {"A": None}),
        ("{A: \t ,B:1}", {"A": None, "B": "1"}),
        ("[a,,b]", ["a", None, "b"]),
        ("[,]", [None, None]),
        ("[a,]", ["a", None]),
        # a repeated key keeps the last value, as a property set twice would
        ("{A:1,A:2}", {"A": "2"}),
        # top-level scalars
        ("hello", "hello"),
        ("  hello world \n", "hello world"),
        ('"a,b"', "a,b"),
        ('""', ""),
        ("True", "True"),
        ("", None),
        (" \t\r\n", None),
    ],
)
def test_reader(text: str, expected: Any) -> None:
    assert loads(text) == expected


def test_reader_takes_bytes() -> None:
    assert loads(b"{A:caf\xc3\xa9}") == {"A": "café"}
    assert loads(b"\xef\xbb\xbf{A:1}") == {"A": "1"}
    with pytest.raises(JsvDecodeError, match="UTF-8"):
        loads(b"{A:\xff}")


@pytest.mark.parametrize(
    ("text", "pos", "message"),
    [
        # unbalanced braces
        ("{A:1", 4, "Unterminated map"),
        ("{", 1, "Unterminated map"),
        ("{A:{B:1}", 8, "Unterminated map"),
        ("[a", 2, "Unterminated list"),
        ("[[a]", 4, "Unterminated list"),
        ("{A:[1}", 5, "Expected ',' or ']'"),
        ("[{A:1]", 5, "Expected ',' or '}'"),
        # trailing garbage
        ("{A:1}}", 5, "Unexpected '}'"),
        ("{A:1} x", 6, "Unexpected 'x'"),
        ("[a]]", 3, "Unexpected ']'"),
        ("a]", 1, "Unexpected ']'"),
        ("a,b", 1, "Unexpected ','"),
        ('"a"b', 3, "Unexpected 'b'"),
        ("}", 0, "Unexpected '}'"),
        (",", 0, "Unexpected ','"),
        ('{A:"x"y}', 6, "Expected ',' or '}'"),
        ('[ "x" y ]', 6, "Expected ',' or ']'"),
        # unterminated quotes
        ('{A:"x', 3, "Unterminated quoted string"),
        ('"', 0, "Unterminated quoted string"),
        ('{A:"x""}', 3, "Unterminated quoted string"),
        ('{"A:1}', 1, "Unterminated quoted string"),
        # missing colon, missing or bad key
        ("{A}", 2, "Expected ':'"),
        ("{A,B:1}", 2, "Expected ':'"),
        ("{A", 2, "Expected ':'"),
        ("{A[1]:x}", 2, "Expected ':'"),
        ('{"A" B:1}', 5, "Expected ':'"),
        ("{:1}", 1, "Expected a key"),
        ("{A:1,}", 5, "Expected a key"),
        ("{,}", 1, "Expected a key"),
        ("{{A:1}:2}", 1, "Expected a key"),
    ],
)
def test_malformed_input_raises_with_position(text: str, pos: int, message: str) -> None:
    with pytest.raises(JsvDecodeError) as caught:
        loads(text)
    error = caught.value
    assert isinstance(error, ValueError)
    assert error.pos == pos, str(error)
    assert message in error.msg
    assert f"(char {pos})" in str(error)


def test_error_reports_line_and_column() -> None:
    with pytest.raises(JsvDecodeError) as caught:
        loads("{\n\tA: 1,\n\tB\n}")
    assert (caught.value.lineno, caught.value.colno) == (4, 1)


@pytest.mark.parametrize("opener", ["[", "{A:", "[{A:"])
def test_nesting_limit(opener: str) -> None:
    closer = {"[": "]", "{A:": "}", "[{A:": "}]"}[opener]
    ok = opener * (MAX_DEPTH // len(closer)) + "x" + closer * (MAX_DEPTH // len(closer))
    loads(ok)
    for depth in (MAX_DEPTH + 1, 100_000):
        with pytest.raises(JsvDecodeError, match="Nesting deeper"):
            loads(opener * depth)


def test_loads_rejects_non_text() -> None:
    with pytest.raises(TypeError):
        loads(123)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------------
# Properties

SPECIAL = [*list('":,{}[]\r\n \t'), "a", "Z", "0", "é", "日", "😀", "\xa0", "\x0b"]
strings = st.one_of(st.text(), st.text(alphabet=st.sampled_from(SPECIAL)))
identifiers = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,15}", fullmatch=True)
scalars = st.one_of(st.none(), strings, st.booleans(), st.integers(), st.uuids())


def dto_like(keys: st.SearchStrategy[str]) -> st.SearchStrategy[Any]:
    return st.recursive(
        scalars,
        lambda children: st.one_of(
            st.lists(children, max_size=5),
            st.tuples(children, children),
            st.dictionaries(keys, children, max_size=6),
        ),
        max_leaves=40,
    )


def normalise(value: Any) -> Any:
    """What ``loads(dumps(value))`` should give: JSV is untyped, so scalars come back as the text
    ServiceStack writes for them; None dict values are omitted; tuples are lists; and a list whose
    only element is None is written ``[]`` (as ServiceStack writes it) so it comes back empty."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, uuid.UUID):
        return value.hex
    if isinstance(value, dict):
        return {key: normalise(item) for key, item in value.items() if item is not None}
    if isinstance(value, list | tuple):
        if len(value) == 1 and value[0] is None:
            return []
        return [normalise(item) for item in value]
    raise AssertionError(f"unexpected {type(value).__name__}")


def depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max(map(depth, value.values()), default=0)
    if isinstance(value, list | tuple):
        return 1 + max(map(depth, value), default=0)
    return 0


def test_normalise_is_what_we_think() -> None:
    assert normalise({"A": None, "B": [None], "C": [None, 1], "D": (True, uuid.UUID(int=1))}) == {
        "B": [],
        "C": [None, "1"],
        "D": ["True", "00000000000000000000000000000001"],
    }


@given(dto_like(identifiers))
def test_round_trip(value: Any) -> None:
    assume(depth(value) <= MAX_DEPTH)
    assert loads(dumps(value)) == normalise(value)


@given(dto_like(strings))
def test_round_trip_with_any_keys(value: Any) -> None:
    assume(depth(value) <= MAX_DEPTH)
    assert loads(dumps(value)) == normalise(value)


NO_WS = [c for c in SPECIAL if c not in " \t\r\n"]


@given(
    st.recursive(
        st.one_of(st.text(alphabet=st.sampled_from(NO_WS)), st.booleans(), st.integers(), st.uuids()),
        lambda children: st.lists(children, max_size=4) | st.dictionaries(identifiers, children, max_size=4),
        max_leaves=30,
    )
)
def test_writer_adds_no_whitespace(value: Any) -> None:
    """ServiceStack writes no whitespace of its own: with none in the strings, there is none at all."""
    assume(depth(value) <= MAX_DEPTH)
    text = dumps(value)
    assert not any(c in text for c in " \t\r\n")


def sprinkle_whitespace(text: str, draw: Any) -> str:
    """Put random whitespace around every structural character outside quoted strings."""
    out: list[str] = []
    quoted = False
    gap = st.text(alphabet=st.sampled_from(list(" \t\r\n")), max_size=3)
    for c in text:
        if c == '"':
            quoted = not quoted  # a doubled quote toggles twice, so stays inside
        if not quoted and c in "{}[],:":
            out.append(draw(gap) + c + draw(gap))
        else:
            out.append(c)
    return draw(gap) + "".join(out) + draw(gap)


@given(dto_like(identifiers), st.data())
def test_whitespace_between_tokens_is_ignored(value: Any, data: st.DataObject) -> None:
    assume(depth(value) <= MAX_DEPTH)
    pretty = sprinkle_whitespace(dumps(value), data.draw)
    assert loads(pretty) == normalise(value)


def assert_only_decode_errors(text: str | bytes) -> None:
    try:
        result = loads(text)
    except JsvDecodeError as error:
        assert 0 <= error.pos <= len(text)
        return
    assert result is None or isinstance(result, str | list | dict)


@given(st.text())
def test_fuzz_any_text(text: str) -> None:
    assert_only_decode_errors(text)


@settings(max_examples=1000)
@given(st.text(alphabet=st.sampled_from(list('{}[]:,"ab \t\r\n')), max_size=60))
def test_fuzz_jsv_alphabet(text: str) -> None:
    assert_only_decode_errors(text)


@given(st.binary())
def test_fuzz_bytes(data: bytes) -> None:
    assert_only_decode_errors(data)


@settings(max_examples=500)
@given(dto_like(identifiers), st.data())
def test_fuzz_mutated_documents(value: Any, data: st.DataObject) -> None:
    """Damage a valid document (drop, insert or replace one character) and it still only ever parses
    or raises JsvDecodeError."""
    assume(depth(value) <= MAX_DEPTH)
    text = dumps(value)
    at = data.draw(st.integers(0, len(text)))
    char = data.draw(st.sampled_from(list('{}[]:,"x ')))
    how = data.draw(st.sampled_from(["drop", "insert", "replace"]))
    if how == "insert":
        text = text[:at] + char + text[at:]
    elif how == "drop":
        text = text[:at] + text[at + 1 :]
    else:
        text = text[:at] + char + text[at + 1 :]
    assert_only_decode_errors(text)
