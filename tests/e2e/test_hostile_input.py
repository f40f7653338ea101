"""Issue 3, point 6: hostile Singer input, through the real CLI and in-process (hypothesis).

Random sequences mix valid audience rows with garbage lines, non-Singer JSON, wrong-typed
fields (numbers, lists, objects, booleans, nulls), very long values, control characters and
non-ASCII addresses. Every raw identifier carries the marker ``zqx7``, so "no raw identifier
in any output" is checked by looking for the marker in stdout, stderr and every log record.

Properties: the run either succeeds, delivering exactly the valid rows and counting each
hostile row as invalid, or (for input that cannot be processed: a RECORD before its SCHEMA, a
RECORD without ``record``, a wrong-typed ``segment_name``) fails with a message naming the line
or row - never a bare traceback, never quoting a raw identifier.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from target_pinterest_audiences.emulator import PinterestEmulator
from target_pinterest_audiences.errors import InputError, StreamRefused, TargetError
from target_pinterest_audiences.pinterest import PinterestError
from target_pinterest_audiences.target import TargetPinterestAudiences
from tests.conftest import AD_ACCOUNT, TOKEN, TargetRunner, schema_message, sha

MARKER = "zqx7"
STREAM = "audience"
SEGMENT = "Fuzz list"
FAST = {"_retry_base_seconds": 0.02, "_lost_create_settle_seconds": 0.5}
HANDLED = (TargetError, InputError, StreamRefused, PinterestError)


# ---- strategies ------------------------------------------------------------------------------

_no_newline = st.characters(blacklist_characters="\n", blacklist_categories=("Cs",))
_controls = st.sampled_from([chr(c) for c in [*range(0, 32), 127, *range(0x80, 0xA0)]])


@st.composite
def valid_email(draw: st.DrawFn) -> tuple[str, str]:
    """(raw address as sent, normalized address that must arrive)."""
    n = draw(st.integers(0, 10**6))
    domain = draw(st.sampled_from(["example.com", "exämple.com", "例子.中国", "test.co.uk"]))
    local = draw(st.sampled_from([f"{MARKER}.u{n}", f"{MARKER}.josé{n}", f"{MARKER}用户{n}"]))
    pad = draw(st.sampled_from(["", " ", "\t", "  "]))
    address = f"{local}@{domain}"
    raw = pad + (address.upper() if draw(st.booleans()) and address.isascii() else address) + pad
    return raw, address.lower()


_marked_text = st.text(_no_newline, max_size=40).map(lambda s: f"{MARKER}{s}")
_huge = st.integers(300, 20_000).map(lambda n: (MARKER * (n // 4 + 1))[:n] + "@example.com")
_with_control = st.tuples(_marked_text, _controls, st.text(_no_newline, max_size=5)).map(
    lambda t: f"{t[0].replace('@', '')}{t[1]}{t[2].replace('@', '')}@example.com"
)
_not_an_address = _marked_text.map(lambda s: s.replace("@", ""))
_json_scalar = st.one_of(
    st.integers(), st.floats(allow_nan=False, allow_infinity=False), st.booleans()
)
_json = st.recursive(
    st.one_of(st.none(), _json_scalar, _marked_text),
    lambda children: st.one_of(
        st.lists(children, max_size=3), st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=6,
)
_wrong_type = st.one_of(
    _json_scalar,
    st.lists(_marked_text, min_size=1, max_size=3),
    st.dictionaries(st.just("value"), _marked_text, min_size=1),
)
_bad_identifier = st.one_of(_huge, _with_control, _not_an_address, _wrong_type)


@st.composite
def hostile_row(draw: st.DrawFn) -> dict[str, Any]:
    """A row that must be counted invalid: no usable identifier, or a bad action."""
    row: dict[str, Any] = {"segment_name": SEGMENT}
    if draw(st.booleans()):
        # a bad action makes even a good address invalid
        row["email"] = draw(valid_email())[0]
        row["action"] = draw(
            st.one_of(
                _json_scalar.filter(lambda v: v is not None),
                st.lists(st.just("add"), min_size=1, max_size=2),
                st.just({"op": "add"}),
                st.sampled_from(["delete", "ad d", "add\x00", "ädd", "upsert"]),
            )
        )
    else:
        fields = draw(
            st.lists(
                st.sampled_from(["email", "idfa", "maid", "email_sha256", "idfa_sha256"]),
                min_size=0,
                max_size=3,
                unique=True,
            )
        )
        for name in fields:
            row[name] = draw(_bad_identifier)
        if draw(st.booleans()):
            row["action"] = draw(st.sampled_from(["add", "remove", None]))
    if draw(st.booleans()):
        row["unrelated"] = draw(_json)  # fields not in the schema are ignored
    return row


@st.composite
def garbage_line(draw: st.DrawFn) -> str:
    """A line that is not a Singer message: the input is corrupted, the run sends nothing."""
    kind = draw(st.sampled_from(["text", "json", "object", "truncated"]))
    if kind == "text":
        text = draw(st.text(_no_newline, min_size=1, max_size=60))
        return f"{MARKER}{text}"  # never valid JSON: starts with a letter that is no literal
    if kind == "json":
        return json.dumps(draw(st.one_of(_json_scalar, st.lists(_marked_text, max_size=3))))
    if kind == "object":
        obj = draw(st.dictionaries(st.sampled_from(["stream", "record", "x"]), _json, max_size=3))
        obj["type"] = draw(st.sampled_from([None, 5, "RECORDS", MARKER, ["RECORD"]]))
        return json.dumps(obj)
    full = json.dumps({"type": "RECORD", "stream": STREAM, "record": {"email": f"{MARKER}@x.io"}})
    return full[: draw(st.integers(1, len(full) - 1))]


FATAL_KINDS = ("record_before_schema", "record_without_record", "bad_segment_name")
CORRUPTED = "corrupted"  # a garbage line: fatal whatever on_invalid_record says (issue 9.9)


@dataclass
class Case:
    lines: list[str]
    expected: set[str]  # hashes that must arrive
    hostile_rows: int
    garbage_lines: int
    fatal: str | None
    raw: list[str] = field(default_factory=list)

    @property
    def no_rows(self) -> bool:
        return not self.expected and not self.hostile_rows


@st.composite
def cases(draw: st.DrawFn, *, max_items: int = 25) -> Case:
    lines = [json.dumps(schema_message(STREAM))]
    expected: set[str] = set()
    hostile = garbage = 0
    fatal = draw(st.one_of(st.none(), st.none(), st.sampled_from(FATAL_KINDS)))
    if fatal == "record_before_schema":
        stray = {"type": "RECORD", "stream": "other", "record": {"email": f"{MARKER}@x.io"}}
        lines.insert(draw(st.integers(0, 1)), json.dumps(stray))
    items = draw(
        st.lists(st.sampled_from(["valid", "hostile", "garbage"]), min_size=1, max_size=max_items)
    )
    for item in items:
        if item == "valid":
            raw, normalized = draw(valid_email())
            expected.add(sha(normalized))
            row: dict[str, Any] = {"segment_name": SEGMENT, "email": raw}
            if draw(st.booleans()):
                row["action"] = draw(st.sampled_from(["add", "ADD", " Add ", None]))
            lines.append(json.dumps({"type": "RECORD", "stream": STREAM, "record": row}))
        elif item == "hostile":
            hostile += 1
            record = draw(hostile_row())
            lines.append(json.dumps({"type": "RECORD", "stream": STREAM, "record": record}))
        else:
            garbage += 1
            lines.append(draw(garbage_line()))
    if fatal == "record_without_record":
        lines.insert(
            draw(st.integers(1, len(lines))), json.dumps({"type": "RECORD", "stream": STREAM})
        )
    elif fatal == "bad_segment_name":
        bad = {"segment_name": draw(_wrong_type), "email": draw(valid_email())[0]}
        lines.insert(
            draw(st.integers(1, len(lines))),
            json.dumps({"type": "RECORD", "stream": STREAM, "record": bad}),
        )
    if garbage and fatal is None:
        fatal = CORRUPTED
    return Case(lines, expected, hostile, garbage, fatal)


# ---- checks ----------------------------------------------------------------------------------


def assert_no_raw_identifier(text: str) -> None:
    assert MARKER not in text.lower(), "a raw identifier (or raw input) reached the output"
    assert MARKER.upper() not in text


def check_delivery(emulator: PinterestEmulator, case: Case, state: dict[str, Any]) -> None:
    lists = emulator.lists(AD_ACCOUNT)
    entry = state["pinterest_audiences"].get(STREAM)
    if case.no_rows:
        # a SCHEMA and no row at all: nothing names a list, nothing to do, nothing claimed
        assert lists == [] and entry is None
        return
    assert entry is not None
    if case.expected:
        assert len(lists) == 1
        assert emulator.members(AD_ACCOUNT, str(lists[0]["id"])) == case.expected
        assert entry["customer_list_id"] == str(lists[0]["id"])
    else:
        assert lists == []
    assert entry["records_invalid"] == case.hostile_rows
    assert entry["records_added"] == len(case.expected)


def check_failure_message(message: str, case: Case) -> None:
    assert_no_raw_identifier(message)
    assert "line" in message or "row" in message, message


# ---- through the real CLI ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def module_emulator() -> Iterator[PinterestEmulator]:
    with PinterestEmulator(page_size=250) as server:
        yield server
        assert server.spec_violations == [], server.spec_violations[:3]


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(case=cases(max_items=15))
def test_hostile_input_through_the_cli(
    case: Case, module_emulator: PinterestEmulator, tmp_path_factory: pytest.TempPathFactory
) -> None:
    emulator = module_emulator
    emulator.reset()
    workdir = tmp_path_factory.mktemp("cli")
    run = TargetRunner(emulator, workdir).run(case.lines, **FAST)
    output = run.stdout + run.stderr
    assert "Traceback" not in output, run.stderr[-3000:]
    assert_no_raw_identifier(output)
    if case.no_rows and case.fatal is None and run.returncode == 1:
        # a stream without any row may be refused (no row names its list): clearly, though
        assert run.states == [] and "Stream 'audience'" in run.stderr
        return
    if case.fatal is not None:
        assert run.returncode == 1, run.stderr[-3000:]
        assert run.states == []
        errors = [line for line in run.stderr.splitlines() if "ERROR" in line]
        assert errors, run.stderr[-3000:]
        check_failure_message("\n".join(errors), case)
        if case.fatal == CORRUPTED:
            assert "the input is corrupted" in run.stderr
            assert [r for r in emulator.requests if r.method in ("POST", "PATCH")] == []
        return
    assert run.returncode == 0, run.stderr[-3000:]
    check_delivery(emulator, case, run.state)


@pytest.mark.parametrize("on_invalid_record", ["skip", "fail"])
def test_a_garbage_line_fails_the_run_naming_its_line(
    target: TargetRunner, on_invalid_record: str
) -> None:
    lines = [
        json.dumps(schema_message(STREAM)),
        json.dumps({"type": "RECORD", "stream": STREAM, "record": {
            "segment_name": SEGMENT, "email": f"{MARKER}@example.com"}}),
        f'{{"type": "RECORD", "record": {{"email": "{MARKER}.x@example.com"',
    ]  # fmt: skip
    run = target.run(lines, on_invalid_record=on_invalid_record)
    assert run.returncode == 1 and run.states == []
    assert "input line 3 is not valid JSON" in run.stderr and "Traceback" not in run.stderr
    assert_no_raw_identifier(run.stdout + run.stderr)


@pytest.mark.parametrize("workers", [0, 2])
def test_a_run_stopped_by_a_broken_line_leaves_no_member_file_behind(
    target: TargetRunner, tmp_path: Any, workers: int
) -> None:
    """Members spilled to disk while reading are removed when reading fails, too."""
    temp = tmp_path / "tmp"
    temp.mkdir()
    lines = [json.dumps(schema_message(STREAM))] + [
        json.dumps({"type": "RECORD", "stream": STREAM, "record": {
            "segment_name": SEGMENT, "email": f"user{n}@example.com"}})
        for n in range(20_000)
    ] + ['{"type": "RECORD", "stream": "']  # fmt: skip
    run = target.run(
        lines,
        env={"TMPDIR": str(temp)},
        _member_buffer_bytes=1,
        _parallel_workers=workers,
    )
    assert run.returncode == 1 and "input line 20002 is not valid JSON" in run.stderr
    assert list(temp.iterdir()) == []


def test_strict_mode_names_the_row_of_a_wrong_typed_value(target: TargetRunner) -> None:
    lines = [json.dumps(schema_message(STREAM))] + [
        json.dumps({"type": "RECORD", "stream": STREAM, "record": {
            "segment_name": SEGMENT, "email": value}})
        for value in (f"{MARKER}@example.com", [f"{MARKER}@example.com"])
    ]  # fmt: skip
    run = target.run(lines, on_invalid_record="fail")
    assert run.returncode == 1 and run.states == []
    assert "row 2" in run.stderr and "input line 3" in run.stderr and "wrong_type" in run.stderr
    assert_no_raw_identifier(run.stdout + run.stderr)


def test_a_one_megabyte_value_and_binary_garbage_are_handled(
    target: TargetRunner, tmp_path: Any
) -> None:
    good = f"{MARKER}.good@example.com"
    lines = [
        json.dumps(schema_message(STREAM)),
        json.dumps({"type": "RECORD", "stream": STREAM, "record": {
            "segment_name": SEGMENT, "email": MARKER * 250_000}}),
        json.dumps({"type": "RECORD", "stream": STREAM, "record": {
            "segment_name": SEGMENT, "idfa": "\x00" * 1000 + MARKER}}),
        json.dumps({"type": "RECORD", "stream": STREAM, "record": {
            "segment_name": SEGMENT, "email": good}}),
    ]  # fmt: skip
    run = target.run(lines, **FAST)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.entry()["records_invalid"] == 2
    assert run.entry()["records_added"] == 1
    assert_no_raw_identifier(run.stdout + run.stderr)


# ---- in-process, many more examples -------------------------------------------------------------


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())
        if record.exc_info:
            self.lines.append(logging.Formatter().formatException(record.exc_info))


@contextlib.contextmanager
def captured_logs() -> Iterator[_Capture]:
    handler = _Capture()
    loggers = [logging.getLogger(), logging.getLogger("target-pinterest-audiences")]
    loggers += [
        logger
        for name, logger in logging.Logger.manager.loggerDict.items()
        if isinstance(logger, logging.Logger) and not logger.propagate
    ]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.removeHandler(handler)
            logger.setLevel(level)


def run_in_process(
    emulator: PinterestEmulator, data: bytes
) -> tuple[Any, str, BaseException | None]:
    out, err = io.StringIO(), io.StringIO()
    error: BaseException | None = None
    # A ledger of its own, as fresh as the emulator (reset for each example): never the one in
    # the checkout (the target runs in this process, whose working directory that is).
    with (
        tempfile.TemporaryDirectory(prefix="tpa-hostile-") as ledger_dir,
        captured_logs() as logs,
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
    ):
        config = {
            "ad_account_id": AD_ACCOUNT,
            "access_token": TOKEN,
            "api_url": emulator.url,
            "ledger_url": f"sqlite:///{ledger_dir}/ledger.sqlite",
            **FAST,
        }
        target = TargetPinterestAudiences(config=config, validate_config=True)
        try:
            target.listen(io.BytesIO(data))
        except HANDLED as exc:
            error = exc
    states = [json.loads(line) for line in out.getvalue().splitlines() if line.strip()]
    text = "\n".join([*logs.lines, out.getvalue(), err.getvalue(), str(error or "")])
    return states, text, error


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=cases(), binary=st.lists(st.binary(min_size=1, max_size=30), max_size=3))
def test_hostile_input_in_process(
    case: Case, binary: list[bytes], module_emulator: PinterestEmulator
) -> None:
    emulator = module_emulator
    emulator.reset()
    # raw bytes that are not UTF-8 / not JSON, appended as extra garbage lines
    extra = [b"\xff" + chunk.replace(b"\n", b" ") for chunk in binary]
    data = b"".join(line.encode() + b"\n" for line in case.lines) + b"".join(
        chunk + b"\n" for chunk in extra
    )
    states, text, error = run_in_process(emulator, data)
    assert_no_raw_identifier(text)
    if extra and case.fatal is None:
        case.fatal = CORRUPTED  # binary garbage lines: the input is corrupted
    if case.no_rows and case.fatal is None and error is not None:
        # a stream without any row may be refused (no row names its list): clearly, though
        assert states == [] and "Stream 'audience'" in str(error)
        return
    if case.fatal is not None:
        assert error is not None, "hostile input that cannot be processed must fail clearly"
        assert states == []
        check_failure_message(str(error), case)
        if case.fatal == CORRUPTED:
            assert [r for r in emulator.requests if r.method in ("POST", "PATCH")] == []
        return
    assert error is None, str(error)
    assert len(states) == 1
    check_delivery(emulator, case, states[0])
