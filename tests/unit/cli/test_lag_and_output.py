"""The operators' CLI without servers: lag arithmetic, tables, JSON shapes, replay headers,
and what `trace` may print."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import pytest
from aiokafka import TopicPartition

from services.tools.cli import main as cli
from services.tools.cli.connect import ConnectError, load_system
from services.tools.cli.dlq import DeadLetter, ReplayOutcome, replay_headers
from services.tools.cli.lag import (
    PartitionLag,
    committed_value,
    expected_topics,
    group_report,
    lag_table_rows,
    partition_lag,
    select_groups,
)
from services.tools.cli.output import emit, format_age, render_table
from services.tools.cli.topics import Message, figures_from
from services.tools.cli.trace import allowed_fields, in_order, trace_event

# -- lag ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("committed", "start", "end", "lag"),
    [
        pytest.param(None, 0, 10, 10, id="nothing-committed"),
        pytest.param(-1, 0, 10, 10, id="minus-one-is-nothing-committed"),
        pytest.param(None, 4, 10, 6, id="nothing-committed-after-deleted-records"),
        pytest.param(7, 0, 10, 3, id="behind"),
        pytest.param(10, 0, 10, 0, id="caught-up"),
        pytest.param(12, 0, 10, 0, id="committed-past-end-never-negative"),
        pytest.param(0, 0, 0, 0, id="empty"),
        pytest.param(None, 5, 5, 0, id="empty-after-deleted-records"),
    ],
)
def test_partition_lag(committed: int | None, start: int, end: int, lag: int) -> None:
    assert partition_lag(committed, start, end) == lag


def test_committed_value_reads_offset_and_metadata() -> None:
    assert committed_value(None) is None
    assert committed_value(SimpleNamespace(offset=-1, metadata="")) is None
    assert committed_value(SimpleNamespace(offset=5, metadata="")) == 5


def test_group_report_shape_and_totals() -> None:
    rows = [
        PartitionLag("care.cases", 1, 3, 0, 5),
        PartitionLag("care.cases", 0, None, 0, 4),
        PartitionLag("hospital.h1.referrals", 0, 9, 0, 7),
    ]
    report = group_report("t1_carelink-intake", rows)
    assert report["group"] == "t1_carelink-intake"
    assert report["service"] == "intake"
    assert report["lag"] == 2 + 4 + 0
    assert [t["topic"] for t in report["topics"]] == ["care.cases", "hospital.h1.referrals"]
    cases = report["topics"][0]
    assert cases["lag"] == 6
    assert cases["partitions"] == [
        {
            "partition": 0,
            "committed": None,
            "start": 0,
            "end": 4,
            "lag": 4,
            "committed_beyond_end": False,
        },
        {
            "partition": 1,
            "committed": 3,
            "start": 0,
            "end": 5,
            "lag": 2,
            "committed_beyond_end": False,
        },
    ]
    assert report["topics"][1]["partitions"][0]["committed_beyond_end"] is True
    json.dumps(report)  # serialisable as it is


def test_lag_table_rows_summary_and_detail() -> None:
    report = group_report(
        "carelink-outcome",
        [PartitionLag("care.cases", 0, 2, 0, 5), PartitionLag("care.cases", 1, 9, 0, 1)],
    )
    assert lag_table_rows([report], detail=False) == [
        ["carelink-outcome", "care.cases", 2, 11, 6, 3, "end<committed"]
    ]
    assert lag_table_rows([report], detail=True) == [
        ["carelink-outcome", "care.cases", 0, 2, 5, 3, ""],
        ["carelink-outcome", "care.cases", 1, 9, 1, 0, "end<committed"],
    ]


def test_groups_with_prefix_are_its_four_names_listed_or_not() -> None:
    assert select_groups([], "t1_") == [
        "t1_carelink-intake",
        "t1_carelink-referral",
        "t1_carelink-scheduling",
        "t1_carelink-outcome",
    ]


def test_groups_without_prefix_are_every_listed_carelink_group_in_service_order() -> None:
    listed = ["other-group", "b_carelink-outcome", "carelink-referral", "b_carelink-intake"]
    assert select_groups(listed, None) == [
        "carelink-referral",
        "b_carelink-intake",
        "b_carelink-outcome",
    ]


def test_expected_topics_per_service() -> None:
    topics = ["care.cases", "hospital.a.referrals", "hospital.a.updates", "care.cases.dlq"]
    assert expected_topics("intake", topics) == ["care.cases", "hospital.a.referrals"]
    assert expected_topics("outcome", topics) == ["care.cases"]
    assert expected_topics(None, ["x"]) == []


# -- topics ------------------------------------------------------------------------------


def test_figures_total_and_rate() -> None:
    first = {TopicPartition("t", 0): 10, TopicPartition("t", 1): 0}
    second = {TopicPartition("t", 0): 14, TopicPartition("t", 1): 2}
    [figures] = figures_from({"t": 2}, first, second, 2.0)
    assert figures.as_json() == {
        "topic": "t",
        "partitions": 2,
        "end_offsets": [14, 2],
        "total": 16,
        "rate_per_s": 3.0,
    }


# -- output ------------------------------------------------------------------------------


def test_table_aligns_text_left_and_numbers_right() -> None:
    table = render_table(
        ["NAME", "COUNT", "OK"],
        [["intake", 5, True], ["scheduling", 120, False], ["x", None, None]],
    )
    assert table.splitlines() == [
        "NAME        COUNT  OK",
        "intake          5  yes",
        "scheduling    120  no",
        "x               -  -",
    ]


def test_table_keeps_each_row_on_one_line() -> None:
    table = render_table(["A", "B"], [["line one\nline two", "tab\there"]])
    assert len(table.splitlines()) == 2
    assert "line one line two" in table


def test_table_without_rows_is_the_heading() -> None:
    assert render_table(["A", "BB"], []) == "A  BB"


def test_emit_json_or_text() -> None:
    out = io.StringIO()
    emit({"a": [1, "é"]}, as_json=True, text=lambda: "never", out=out)
    assert json.loads(out.getvalue()) == {"a": [1, "é"]}
    out = io.StringIO()
    emit({"a": 1}, as_json=False, text=lambda: "a table", out=out)
    assert out.getvalue() == "a table\n"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(None, "-"), (5.4, "5s"), (75, "1m15s"), (3 * 3600 + 60, "3h01m"), (90000, "1d01h")],
)
def test_format_age(seconds: float | None, text: str) -> None:
    assert format_age(seconds) == text


# -- dead letters ------------------------------------------------------------------------


def _message(
    topic: str,
    *,
    key: bytes | None = b"k",
    value: bytes | None = b"{}",
    headers: list[tuple[str, bytes]] | None = None,
    partition: int = 0,
    offset: int = 0,
) -> Message:
    return Message(
        topic=topic,
        partition=partition,
        offset=offset,
        timestamp_ms=1_700_000_000_000,
        key=key,
        value=value,
        headers=tuple(headers or ()),
    )


def test_replay_headers_keep_originals_drop_dead_letter_ones_and_mark_the_replay() -> None:
    headers = [
        ("ce_id", b"e-1"),
        ("x-raw", b"\xff\xfe"),
        ("carelink_dlq_error", b"boom"),
        ("carelink_dlq_topic", b"care.cases"),
        ("carelink_replay", b"care.cases.dlq:0:1"),  # an earlier replay that failed again
        ("ce_type", b"t"),
    ]
    assert replay_headers(headers, "care.cases.dlq:0:7") == [
        ("ce_id", b"e-1"),
        ("x-raw", b"\xff\xfe"),
        ("ce_type", b"t"),
        ("carelink_replay", b"care.cases.dlq:0:7"),
    ]


def test_dead_letter_summary_never_holds_the_value() -> None:
    letter = DeadLetter(
        _message(
            "hospital.h1.referrals.dlq",
            key=None,
            value=b'{"patient": {"name": "Kim"}}',
            headers=[
                ("carelink_dlq_error", b"record has no usable key"),
                ("carelink_dlq_topic", b"hospital.h1.referrals"),
                ("carelink_dlq_partition", b"2"),
                ("carelink_dlq_offset", b"41"),
                ("carelink_dlq_consumer", b"intake"),
            ],
            offset=3,
        )
    )
    summary = letter.summary(replayed=False)
    assert letter.id == "hospital.h1.referrals.dlq:0:3"
    assert summary["source_topic"] == "hospital.h1.referrals"
    assert (summary["source_partition"], summary["source_offset"]) == (2, 41)
    assert summary["error"] == "record has no usable key"
    assert summary["key"] is None
    assert summary["size"] == len(b'{"patient": {"name": "Kim"}}')
    assert "value" not in summary
    assert "Kim" not in json.dumps(summary)


def test_replay_outcome_json_shape() -> None:
    outcome = ReplayOutcome("d.dlq:0:1", "replayed", "d", 2, 10)
    assert outcome.as_json() == {
        "dead_letter": "d.dlq:0:1",
        "action": "replayed",
        "topic": "d",
        "partition": 2,
        "offset": 10,
        "detail": "",
    }


# -- trace: what may be printed -----------------------------------------------------------

PERSONAL = {
    "patient": {"name": "홍길동", "phone": "010-1234-5678", "birth_date": "1950-01-01"},
    "social_worker": {"name": "Lee", "phone": "02-000-0000"},
    "name": "홍길동",
    "phone": "010-1234-5678",
    "reason": "free text about the patient",
    "details": {"note": "free text"},
    "care_precautions": "낙상 위험",
}


def test_case_fields_are_an_allow_list() -> None:
    data = {
        "case_id": "case-1",
        "referral_id": "ref-1",
        "hospital_id": "h1",
        "reason_code": "missing-consent",
        "priority": "urgent",
        "age_band": "70-74",
        **PERSONAL,
    }
    assert allowed_fields("cases", data) == {
        "referral_id": "ref-1",
        "hospital_id": "h1",
        "reason_code": "missing-consent",
        "priority": "urgent",
    }


def test_update_fields_are_sequence_and_statuses_only() -> None:
    data = {
        "referral_id": "ref-1",
        "case_id": "case-1",
        "sequence": 3,
        "status": "on-hold",
        "business_status": "on-hold",
        "reason_code": "unreachable",
        **PERSONAL,
    }
    assert allowed_fields("updates", data) == {
        "case_id": "case-1",
        "sequence": 3,
        "status": "on-hold",
        "business_status": "on-hold",
        "reason_code": "unreachable",
    }


def test_nested_values_are_never_printed_even_under_an_allowed_name() -> None:
    assert allowed_fields("cases", {"reason_code": {"name": "Kim"}}) == {}


def test_hospital_referral_records_show_only_envelope_time_and_size() -> None:
    value = json.dumps({"referral_id": "ref-1", **PERSONAL}, ensure_ascii=False).encode()
    event = trace_event(
        _message(
            "hospital.h1.referrals",
            key=b"ref-1",
            value=value,
            headers=[
                ("ce_type", b"carelink.referral.submitted.v1"),
                ("ce_id", b"e-1"),
                ("ce_time", b"2026-01-02T03:04:05+00:00"),
            ],
        )
    )
    shown = json.dumps(event.as_json(), ensure_ascii=False)
    assert event.fields == {}
    assert event.size == len(value)
    assert event.ce_id == "e-1"
    assert event.time == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    for secret in ("홍길동", "010-1234-5678", "free text", "낙상"):
        assert secret not in shown


def test_dead_letters_in_a_trace_show_where_they_came_from_not_their_value() -> None:
    event = trace_event(
        _message(
            "hospital.h1.referrals.dlq",
            value=json.dumps(PERSONAL, ensure_ascii=False).encode(),
            headers=[("carelink_dlq_topic", b"hospital.h1.referrals"), ("ce_type", b"x")],
        )
    )
    assert event.fields == {"source_topic": "hospital.h1.referrals", "consumer": None}
    assert "홍길동" not in json.dumps(event.as_json(), ensure_ascii=False)


def test_trace_order_merges_by_time_but_keeps_each_partitions_order() -> None:
    def at(topic: str, offset: int, time: str) -> Message:
        return _message(topic, offset=offset, headers=[("ce_time", time.encode())])

    messages = [
        at("hospital.h1.updates", 0, "2026-01-01T00:00:03+00:00"),
        at("care.cases", 1, "2026-01-01T00:00:02+00:00"),
        # Clocks disagree: offset 2 says it is older than offset 1, yet it came after.
        at("care.cases", 2, "2026-01-01T00:00:01+00:00"),
        at("care.cases", 0, "2026-01-01T00:00:00+00:00"),
        at("hospital.h1.referrals", 0, "2025-12-31T23:59:59+00:00"),
    ]
    order = [(e.topic, e.offset) for e in in_order(messages)]
    assert order.index(("care.cases", 0)) < order.index(("care.cases", 1))
    assert order.index(("care.cases", 1)) < order.index(("care.cases", 2))
    assert order[0] == ("hospital.h1.referrals", 0)


# -- where the system is, and the command line ---------------------------------------------


def _system_file(tmp_path: Path) -> Path:
    path = tmp_path / "system.json"
    path.write_text(
        json.dumps(
            {
                "infrastructure": "embedded",
                "kafka_bootstrap": "127.0.0.1:1",
                "databases": {"intake": "postgresql://x/intake"},
                "health": {"intake": "http://127.0.0.1:1/health/ready"},
            }
        )
    )
    return path


def test_system_from_file_with_environment_overrides(tmp_path: Path) -> None:
    path = _system_file(tmp_path)
    system = load_system(path, {})
    assert system.kafka_bootstrap == "127.0.0.1:1"
    assert system.infrastructure == "embedded"
    system = load_system(
        path,
        {
            "CARELINK_KAFKA_BOOTSTRAP": "broker:9092",
            "CARELINK_INTAKE_DATABASE_URL": "postgresql://y/intake",
            "CARELINK_OUTCOME_DATABASE_URL": "postgresql://y/outcome",
        },
    )
    assert system.kafka_bootstrap == "broker:9092"
    assert system.infrastructure is None  # the file says nothing about that broker
    assert system.databases == {
        "intake": "postgresql://y/intake",
        "outcome": "postgresql://y/outcome",
    }


def test_no_system_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConnectError, match="make run"):
        load_system(None, {}, candidates=[tmp_path / "missing.json"])
    with pytest.raises(ConnectError, match="make run"):
        load_system(tmp_path / "missing.json", {})


def test_help_everywhere_exits_zero(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (
        ["--help"],
        ["topics", "--help"],
        ["lag", "--help"],
        ["dlq", "--help"],
        ["dlq", "list", "--help"],
        ["dlq", "show", "--help"],
        ["dlq", "replay", "--help"],
        ["trace", "--help"],
        ["outbox", "--help"],
        ["status", "--help"],
    ):
        assert cli.main(argv) == cli.EXIT_OK, argv
    assert "approximate" in capsys.readouterr().out


def test_usage_errors_exit_two(tmp_path: Path) -> None:
    system = str(_system_file(tmp_path))
    assert cli.main(["no-such-command"]) == cli.EXIT_USAGE
    assert cli.main(["dlq"]) == cli.EXIT_USAGE
    assert cli.main(["dlq", "replay", "--system", system]) == cli.EXIT_USAGE
    assert cli.main(["dlq", "replay", "--all", "t", "0", "1", "--system", system]) == 2
    assert cli.main(["dlq", "replay", "t", "zero", "1", "--system", system]) == 2


def test_missing_system_exits_three(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["lag", "--system", str(tmp_path / "nope.json")]) == cli.EXIT_UNREACHABLE
    assert "is `make run` running?" in capsys.readouterr().err


def test_unreachable_broker_exits_three(tmp_path: Path) -> None:
    assert cli.main(["--json", "topics", "--system", str(_system_file(tmp_path))]) == 3
