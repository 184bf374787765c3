"""Building one record (log_collector/record.py): level, caller, contexts, common fields,
event_id, redaction and a JSON encoding that never raises."""

import asyncio
import collections
import datetime
import decimal
import enum
import inspect
import json
import math
import pathlib
import subprocess
import sys
import uuid
from types import MappingProxyType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from log_collector.client.context import set_request_context, set_user_context
from log_collector.client.record import REDACTED, RecordBuilder, encode, uuid7
from log_collector.client.settings import DEFAULT_REDACT_KEYS, load_settings

pytestmark = pytest.mark.usefixtures("no_context")

T0 = 1_700_000_000.0


def make_builder(tmp_path, clock=lambda: T0, **explicit):
    settings_ = load_settings(explicit, environ={}, dotenv_path=tmp_path / "no.env")
    return RecordBuilder(settings_, clock=clock)


@pytest.fixture
def builder(tmp_path):
    return make_builder(tmp_path)


def build(builder, level="INFO", message="m", auto_caller=True, **fields):
    built = builder.build(level, message, fields, auto_caller=auto_caller)
    return None if built is None else json.loads(built[1])


# Levels.


@pytest.mark.parametrize(
    ("given_level", "expected"),
    [
        ("trace", "TRACE"),
        ("debug", "DEBUG"),
        ("info", "INFO"),
        ("Info", "INFO"),
        ("warn", "WARN"),
        ("warning", "WARN"),
        ("WARNING", "WARN"),
        ("error", "ERROR"),
        ("fatal", "FATAL"),
        ("critical", "FATAL"),
        ("CRITICAL", "FATAL"),
        (" error ", "ERROR"),
    ],
)
def test_level_names_and_aliases_are_normalised(builder, given_level, expected):
    assert expected == build(builder, given_level)["level"]


@pytest.mark.parametrize("given_level", ["verbose", "", 42, None])
def test_an_unknown_level_is_kept_as_info_and_says_what_it_was(builder, given_level):
    record = build(builder, given_level)

    assert "INFO" == record["level"]
    assert str(given_level) == record["level_name"]


def test_an_unhashable_level_is_kept_as_info_too(builder):
    record = build(builder, ["not", "a", "level"])

    assert ("INFO", "['not', 'a', 'level']") == (record["level"], record["level_name"])


def test_records_below_min_level_are_not_built(tmp_path):
    builder = make_builder(tmp_path, min_level="warning")

    assert None is build(builder, "INFO")
    assert None is build(builder, "debug")
    assert None is build(builder, "no-such-level")  # kept as INFO, so below WARN
    assert "WARN" == build(builder, "warning")["level"]
    assert "FATAL" == build(builder, "critical")["level"]


def test_the_client_drops_calls_below_min_level(offline_client):
    client = offline_client(min_level="ERROR")

    client.info("not kept")
    client.warning("not kept either")
    client.error("kept")
    client.critical("kept too")

    assert [("ERROR", "kept"), ("FATAL", "kept too")] == [
        (r["level"], r["message"]) for r in client.queue
    ]


def test_a_non_string_message_is_stored_as_its_text(builder):
    assert "123" == build(builder, message=123)["message"]


# Auto caller.


def test_auto_caller_names_the_calling_function_file_and_line(builder):
    line = inspect.currentframe().f_lineno + 1
    record = json.loads(builder.build("INFO", "m", {})[1])

    assert "test_auto_caller_names_the_calling_function_file_and_line" == record["function_name"]
    assert __file__ == record["file_path"]
    assert line == record["line_no"]


def test_auto_caller_can_be_turned_off(builder):
    record = build(builder, auto_caller=False)

    assert {"function_name", "file_path", "line_no"}.isdisjoint(record)


def test_explicit_caller_fields_win_over_auto_caller(builder):
    record = build(builder, function_name="handler", file_path="app.py", line_no=7)

    assert ("handler", "app.py", 7) == (
        record["function_name"],
        record["file_path"],
        record["line_no"],
    )


def _app_function(client):
    line = inspect.currentframe().f_lineno + 1
    client.info("from the app")
    client.log("warning", "through log()")
    return line


def test_client_calls_report_the_apps_frame_never_the_librarys(offline_client):
    client = offline_client()

    line = _app_function(client)

    records = list(client.queue)
    assert [("_app_function", __file__, line), ("_app_function", __file__, line + 1)] == [
        (r["function_name"], r["file_path"], r["line_no"]) for r in records
    ]


def test_timer_and_end_timer_report_the_apps_frame(offline_client):
    client = offline_client()

    with client.timer("timed"):
        pass
    client.end_timer(client.start_timer(), "INFO", "ended")

    assert [("test_timer_and_end_timer_report_the_apps_frame", __file__)] * 2 == [
        (r["function_name"], r["file_path"]) for r in client.queue
    ]
    assert all(isinstance(r["duration_ms"], float) for r in client.queue)


def _source_lines(fn):
    lines, first = inspect.getsourcelines(fn)
    return range(first, first + len(lines))


def test_measure_reports_the_measured_function_with_a_line_inside_it(offline_client):
    client = offline_client()

    @client.measure("measured")
    def work():
        return 1

    work()

    record = client.queue[0]
    assert ("work", __file__) == (record["function_name"], record["file_path"])
    assert record["line_no"] in _source_lines(work)


def test_measure_names_sync_and_async_functions(offline_client):
    client = offline_client()

    @client.measure
    def sync_work():
        return 1

    @client.measure("async done")
    async def async_work():
        return 2

    assert 1 == sync_work()
    assert 2 == asyncio.run(async_work())

    assert [
        ("sync_work completed", "sync_work", __file__),
        ("async done", "async_work", __file__),
    ] == [(r["message"], r["function_name"], r["file_path"]) for r in client.queue]


@pytest.mark.parametrize("field", ["level", "message"])
def test_a_field_named_level_or_message_never_makes_a_log_call_raise(offline_client, field):
    client = offline_client()

    client.info("hello", **{field: "x"})

    assert 1 == len(client.queue)


# Precedence: call fields > request context > user context > common fields.


def test_common_fields_come_from_the_settings(tmp_path):
    builder = make_builder(tmp_path, service="billing", environment="staging")

    record = build(builder)

    assert {
        "service": "billing",
        "environment": "staging",
        "service_version": "v0.0.0-dev",
        "log_type": "BACKEND",
    } == {k: record[k] for k in ("service", "environment", "service_version", "log_type")}


def test_call_fields_win_over_request_context_over_user_context_over_common_fields(tmp_path):
    builder = make_builder(tmp_path, service="common")
    set_user_context(service="user", a="user", b="user", c="user")
    set_request_context(service="request", a="request", b="request")

    record = build(builder, service="call", a="call")

    assert {"service": "call", "a": "call", "b": "request", "c": "user"} == {
        k: record[k] for k in ("service", "a", "b", "c")
    }


@pytest.mark.parametrize(
    ("request_ctx", "user_ctx", "expected"),
    [
        ({"service": "request"}, {"service": "user"}, "request"),
        (None, {"service": "user"}, "user"),
        (None, None, "common"),
    ],
)
def test_each_layer_wins_over_the_ones_below_it(tmp_path, request_ctx, user_ctx, expected):
    builder = make_builder(tmp_path, service="common")
    if request_ctx:
        set_request_context(**request_ctx)
    if user_ctx:
        set_user_context(**user_ctx)

    assert expected == build(builder)["service"]


def test_created_at_is_the_clock_at_the_call(tmp_path):
    builder = make_builder(tmp_path, clock=lambda: T0 + 0.25)

    assert T0 + 0.25 == build(builder)["created_at"]


# event_id.


@pytest.mark.parametrize("created_at", [math.nan, math.inf])
def test_a_non_finite_created_at_field_still_gives_a_record(builder, created_at):
    record = build(builder, created_at=created_at)

    assert 7 == uuid.UUID(record["event_id"]).version


def test_event_id_is_a_uuid_version_7_carrying_the_creation_millisecond(builder):
    record = build(builder)

    event_id = uuid.UUID(record["event_id"])
    assert 7 == event_id.version
    assert uuid.RFC_4122 == event_id.variant
    assert int(T0 * 1000) == event_id.int >> 80
    assert str(event_id) == record["event_id"]


def test_event_ids_are_unique_and_sort_in_creation_order(tmp_path):
    ticks = iter(T0 + i * 0.002 for i in range(10_000))
    builder = make_builder(tmp_path, clock=lambda: next(ticks))

    ids = [build(builder, auto_caller=False)["event_id"] for _ in range(5_000)]

    assert 5_000 == len(set(ids))
    assert ids == sorted(ids)


def test_event_ids_in_the_same_millisecond_are_unique():
    ids = [uuid7(1) for _ in range(20_000)]

    assert 20_000 == len(set(ids))
    assert all(uuid.UUID(i).version == 7 for i in ids[:100])


_FORK_SCRIPT = """
import json, os, sys
from log_collector.client.record import uuid7
if sys.argv[1] == "with-client":
    from log_collector import AsyncLogClient
    AsyncLogClient("http://127.0.0.1:9", spool_dir=sys.argv[2]).close(timeout=0.1)
uuid7(5)  # the generator is in use before the fork
read_end, write_end = os.pipe()
pid = os.fork()
if pid == 0:
    os.write(write_end, json.dumps([uuid7(5) for _ in range(200)]).encode())
    os._exit(0)
os.close(write_end)
parent_ids = [uuid7(5) for _ in range(200)]
with os.fdopen(read_end, "rb") as pipe:
    child_ids = json.loads(pipe.read())
os.waitpid(pid, 0)
print(json.dumps([len(child_ids), len(set(parent_ids) & set(child_ids))]))
"""


def _fork_and_compare_ids(tmp_path, mode):
    """[ids the child drew, ids both drew], from a fresh interpreter (no earlier test's
    client or fork hook can help)."""
    done = subprocess.run(
        [sys.executable, "-c", _FORK_SCRIPT, mode, str(tmp_path / "spool")],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert 0 == done.returncode, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_forked_child_of_a_client_process_draws_different_event_ids(tmp_path):
    assert [200, 0] == _fork_and_compare_ids(tmp_path, "with-client")


def test_a_forked_child_draws_different_event_ids_even_before_any_client_exists(tmp_path):
    assert [200, 0] == _fork_and_compare_ids(tmp_path, "no-client")


# Redaction.


@pytest.mark.parametrize(
    "key",
    ["password", "PASSWORD", "Password", "api_key", "api-key", "API-Key", "X-Api-Key",
     "Authorization", "cookie", "Set-Cookie", "secret", "token", "access_token", "passwd"],
)  # fmt: skip
def test_sensitive_keys_are_redacted_whatever_their_case_or_dashes(builder, key):
    assert REDACTED == build(builder, **{key: "hunter2"})[key]


@pytest.mark.parametrize(
    "key", ["token_count", "secretary", "password_hint_shown", "user", "passage"]
)
def test_keys_that_only_contain_a_sensitive_word_are_kept(builder, key):
    assert "value" == build(builder, **{key: "value"})[key]


def test_sensitive_keys_are_redacted_at_any_depth_in_dicts_and_lists(builder):
    record = build(
        builder,
        request={"headers": {"Authorization": "Bearer x", "Accept": "json"}},
        users=[{"name": "a", "password": "p1"}, [{"token": "t"}], "plain"],
    )

    assert {"headers": {"Authorization": REDACTED, "Accept": "json"}} == record["request"]
    assert [{"name": "a", "password": REDACTED}, [{"token": REDACTED}], "plain"] == record["users"]


def test_redaction_never_changes_the_callers_own_objects(builder):
    nested = {"headers": {"Authorization": "Bearer x"}, "items": [{"password": "p"}]}
    before = json.loads(json.dumps(nested))

    build(builder, request=nested)

    assert before == nested


def test_redaction_never_changes_the_context_dicts(builder):
    set_request_context(headers={"cookie": "c"})
    set_user_context(password="p")

    record = build(builder)

    assert ({"cookie": REDACTED}, REDACTED) == (record["headers"], record["password"])
    from log_collector.client.context import get_request_context, get_user_context

    assert {"headers": {"cookie": "c"}} == get_request_context()
    assert {"password": "p"} == get_user_context()


def test_custom_redact_keys_replace_the_defaults(tmp_path):
    builder = make_builder(tmp_path, redact_keys=["Order-ID"])

    record = build(builder, order_id=42, password="kept", nested={"ORDER_ID": 1})

    assert (REDACTED, "kept", {"ORDER_ID": REDACTED}) == (
        record["order_id"],
        record["password"],
        record["nested"],
    )


def test_custom_redact_keys_can_extend_the_defaults(tmp_path):
    builder = make_builder(tmp_path, redact_keys=DEFAULT_REDACT_KEYS | {"iban"})

    record = build(builder, iban="DE00", password="p")

    assert (REDACTED, REDACTED) == (record["iban"], record["password"])


def test_an_empty_redact_keys_turns_redaction_off(tmp_path):
    builder = make_builder(tmp_path, redact_keys=())

    assert "p" == build(builder, password="p")["password"]


_AS_DICT = {"password": REDACTED}


@pytest.mark.parametrize(
    ("container", "expected"),
    [
        pytest.param(lambda: collections.OrderedDict(password="p"), _AS_DICT, id="OrderedDict"),
        pytest.param(
            lambda: collections.defaultdict(str, password="p"), _AS_DICT, id="defaultdict"
        ),
        pytest.param(lambda: MappingProxyType({"password": "p"}), _AS_DICT, id="Mapping"),
        pytest.param(lambda: ({"password": "p"},), [_AS_DICT], id="tuple"),
    ],
)
def test_sensitive_values_inside_other_containers_are_redacted(builder, container, expected):
    assert expected == build(builder, nested=container())["nested"]


# JSON encoding.


class Color(enum.Enum):
    RED = "red"


class Opaque:
    def __repr__(self):
        return "<Opaque 1>"


class BadRepr:
    def __repr__(self):
        raise RuntimeError("no repr")


class BadStrError(Exception):
    def __str__(self):
        raise RuntimeError("no str")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (datetime.datetime(2024, 1, 2, 3, 4, 5, 6), "2024-01-02T03:04:05.000006"),
        (
            datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.UTC),
            "2024-01-02T03:04:05+00:00",
        ),
        (datetime.date(2024, 1, 2), "2024-01-02"),
        (datetime.timedelta(seconds=1.5), 1.5),
        (decimal.Decimal("1.10"), "1.10"),
        (uuid.UUID(int=1), "00000000-0000-0000-0000-000000000001"),
        ("café".encode(), "café"),
        (b"\xff", "\\xff"),
        ({3, 1, 2}, [1, 2, 3]),
        (frozenset({"b", "a"}), ["a", "b"]),
        (ValueError("boom"), "ValueError: boom"),
        (Color.RED, "red"),
        (pathlib.PurePosixPath("/a/b"), "/a/b"),
        (Opaque(), "<Opaque 1>"),
        (BadRepr(), "<unrepresentable BadRepr>"),
        ((1, "a"), [1, "a"]),
    ],
    ids=lambda v: type(v).__name__,
)
def test_values_json_has_no_type_for_get_a_sensible_form(value, expected):
    assert {"v": expected} == json.loads(encode({"v": value}))


def test_a_set_of_unorderable_values_is_still_encoded():
    assert sorted([1, "a"], key=str) == sorted(json.loads(encode({"v": {1, "a"}}))["v"], key=str)


def test_an_exception_whose_str_raises_is_encoded_without_raising():
    text = encode({"e": BadStrError(), "keep": 1})

    assert 1 == json.loads(text)["keep"]
    assert "BadStrError" in json.loads(text)["e"]


def test_circular_structures_are_cut():
    looped_list: list = []
    looped_list.append(looped_list)
    looped_dict: dict = {}
    looped_dict["self"] = looped_dict

    assert {"l": ["<circular>"], "d": {"self": "<circular>"}} == json.loads(
        encode({"l": looped_list, "d": looped_dict})
    )


def test_a_very_deep_structure_is_encoded_without_raising():
    deep: list = []
    inner = deep
    for _ in range(100_000):
        inner.append([])
        inner = inner[0]

    assert "kept" == json.loads(encode({"deep": deep, "k": "kept"}))["k"]


def test_nan_and_infinity_become_null_on_every_encoding_path():
    """JSON has no NaN: both the orjson path and the json fallback write null."""
    values = {"nan": math.nan, "inf": math.inf, "ninf": -math.inf}
    expected = {"nan": None, "inf": None, "ninf": None}

    assert expected == json.loads(encode(values))
    assert expected == {k: json.loads(encode({**values, (1, 2): 0}))[k] for k in expected}


def test_nan_and_infinity_never_produce_invalid_json():
    text = encode({"nan": math.nan, "inf": math.inf, "ninf": -math.inf})

    json.loads(text, parse_constant=lambda name: pytest.fail(f"non-standard JSON {name}"))


def test_int_and_none_keys_become_their_json_text():
    assert {"1": "int", "null": "none"} == json.loads(encode({1: "int", None: "none"}))


def test_tuple_keys_become_their_text():
    assert {"(1, 2)": "tuple", "k": 1} == json.loads(encode({(1, 2): "tuple", "k": 1}))


def test_lone_surrogates_become_replacement_characters_and_valid_utf8():
    text = encode({"name": "file\udcff.txt", "\udcfe": 1})

    text.encode("utf-8")  # would raise on a surrogate
    assert {"name": "file\ufffd.txt", "\ufffd": 1} == json.loads(text)


def test_a_big_integer_survives_exactly():
    assert {"n": 2**70} == json.loads(encode({"n": 2**70}))


def test_an_integer_too_long_for_str_loses_only_that_value(builder):
    record = build(builder, message="kept", n=10**5000, other=1)

    assert ("kept", "INFO", 1) == (record["message"], record["level"], record["other"])
    assert isinstance(record["n"], str)
    assert 7 == uuid.UUID(record["event_id"]).version


def test_a_one_mebibyte_message_is_kept_whole(offline_client):
    client = offline_client()
    message = "x" * (1024 * 1024)

    client.info(message)

    assert message == client.queue[0]["message"]


def test_unserialisable_values_never_make_a_log_call_raise(offline_client):
    client = offline_client()
    looped: list = []
    looped.append(looped)

    client.info("odd values", obj=BadRepr(), loop=looped, when=datetime.date(2024, 1, 2))

    record = client.queue[0]
    assert ("<unrepresentable BadRepr>", ["<circular>"], "2024-01-02") == (
        record["obj"],
        record["loop"],
        record["when"],
    )


# Round trip: arbitrary JSON-able fields come back unchanged (except redacted keys).
# auto_caller is a parameter of the log call, never a field.
_RESERVED = {"level", "message", "event_id", "created_at", "auto_caller"}
_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
_keys = _text.filter(lambda k: k not in _RESERVED)
_json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | _text,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(_keys | st.sampled_from(["password", "Api-Key"]), children, max_size=4)
    ),
    max_leaves=20,
)


def _redacted(value):
    if isinstance(value, dict):
        return {
            k: REDACTED if k.lower().replace("-", "_") in DEFAULT_REDACT_KEYS else _redacted(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_redacted(v) for v in value]
    return value


@settings(max_examples=200, deadline=None)
@given(fields=st.dictionaries(_keys, _json_values, max_size=6))
def test_json_fields_survive_encoding_unchanged_except_redacted_keys(tmp_path_factory, fields):
    builder = make_builder(tmp_path_factory.getbasetemp())

    record = build(builder, auto_caller=False, **fields)

    assert _redacted(fields) == {k: record[k] for k in fields}
