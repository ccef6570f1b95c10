"""services.lib.runtime.logging: one JSON shape for our lines and the libraries', no locals.

configure_logging replaces the root logger's handlers and structlog's global
configuration; every test restores both before it returns (inside the test, so
pytest's own capture handlers are put back as pytest left them).
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import structlog

from services.lib.runtime import logging as carelink_logging
from services.lib.runtime.logging import configure_logging, get_logger

SERVICE = "intake-under-test"
_LIBRARY_LOGGERS = ("aiokafka", "faststream", "uvicorn", "uvicorn.error", "uvicorn.access")


@contextmanager
def json_logging(tmp_path: Path, *, level: str = "INFO") -> Iterator[Path]:
    """Configure JSON logging to a file for the block, then restore everything."""
    root = logging.getLogger()
    saved_handlers = root.handlers[:]
    saved_level = root.level
    saved_libs = {
        name: (
            logging.getLogger(name).level,
            logging.getLogger(name).handlers[:],
            logging.getLogger(name).propagate,
        )
        for name in _LIBRARY_LOGGERS
    }
    saved_flag = carelink_logging._configured
    log_file = tmp_path / f"{uuid.uuid4().hex}.log"
    try:
        configure_logging(service=SERVICE, level=level, fmt="json", log_file=log_file)
        yield log_file
    finally:
        for handler in root.handlers:
            if handler not in saved_handlers:
                handler.close()
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)
        for name, (level_, handlers, propagate) in saved_libs.items():
            lib = logging.getLogger(name)
            lib.setLevel(level_)
            lib.handlers[:] = handlers
            lib.propagate = propagate
        structlog.reset_defaults()
        structlog.contextvars.clear_contextvars()
        carelink_logging._configured = saved_flag


def lines(log_file: Path) -> list[dict[str, Any]]:
    for handler in logging.getLogger().handlers:
        handler.flush()
    text = log_file.read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_structlog_lines_are_json_with_service_level_and_timestamp(tmp_path: Path) -> None:
    with json_logging(tmp_path) as log_file:
        get_logger("carelink.test").info("referral accepted", case_id="case-1", sequence=2)
        get_logger("carelink.test").warning("second line")
        records = lines(log_file)

    assert [r["event"] for r in records] == ["referral accepted", "second line"]
    first = records[0]
    assert first["case_id"] == "case-1"
    assert first["sequence"] == 2
    assert first["level"] == "info"
    assert first["logger"] == "carelink.test"
    assert first["service"] == SERVICE
    assert first["timestamp"].endswith("Z")
    assert records[1]["level"] == "warning"


def test_level_filters_lower_lines(tmp_path: Path) -> None:
    with json_logging(tmp_path, level="WARNING") as log_file:
        log = get_logger("carelink.test")
        log.info("not wanted")
        log.warning("wanted")
        records = lines(log_file)

    assert [r["event"] for r in records] == ["wanted"]


def test_contextvars_appear_while_bound_and_are_gone_after_clear(tmp_path: Path) -> None:
    with json_logging(tmp_path) as log_file:
        log = get_logger("carelink.test")
        structlog.contextvars.bind_contextvars(
            case_id="case-ctx", topic="care.cases", partition=3, offset=42
        )
        log.info("inside")
        logging.getLogger("aiokafka.consumer").warning("library inside")
        structlog.contextvars.clear_contextvars()
        log.info("after")
        records = lines(log_file)

    inside, library_inside, after = records
    for bound in (inside, library_inside):
        assert bound["case_id"] == "case-ctx"
        assert bound["topic"] == "care.cases"
        assert bound["partition"] == 3
        assert bound["offset"] == 42
    assert after["event"] == "after"
    assert not {"case_id", "topic", "partition", "offset"} & after.keys()


def _fail_with_secret_local() -> None:
    # Built at run time so the value is not in this file's source lines either
    # (a traceback frame may quote the line it stopped on).
    secret = "".join(["민감한", "-환자-", uuid.uuid4().hex])
    _fail_with_secret_local.last_secret = secret  # type: ignore[attr-defined]
    payload = {"patient": {"name": secret}}
    raise ValueError(f"bad record with {len(payload)} keys")


def test_exception_renders_traceback_without_local_values(tmp_path: Path) -> None:
    with json_logging(tmp_path) as log_file:
        try:
            _fail_with_secret_local()
        except ValueError:
            get_logger("carelink.test").exception("handler failed", case_id="case-exc")
        records = lines(log_file)
        raw = log_file.read_text(encoding="utf-8")

    secret = _fail_with_secret_local.last_secret  # type: ignore[attr-defined]
    (record,) = records
    assert record["event"] == "handler failed"
    assert record["level"] == "error"
    assert record["service"] == SERVICE
    trace = record["exception"]
    assert isinstance(trace, list)
    assert trace[0]["exc_type"] == "ValueError"
    assert "bad record with 1 keys" in trace[0]["exc_value"]
    frames = trace[0]["frames"]
    assert any(frame["name"] == "_fail_with_secret_local" for frame in frames)
    assert all(not frame.get("locals") for frame in frames)
    # The value held by a local must not reach the log in any form.
    assert secret not in raw
    assert json.dumps(secret)[1:-1] not in raw
    assert secret.split("-")[-1] not in raw


def test_stdlib_exception_renders_without_local_values(tmp_path: Path) -> None:
    with json_logging(tmp_path) as log_file:
        try:
            _fail_with_secret_local()
        except ValueError:
            logging.getLogger("faststream.access").exception("consumer error")
        records = lines(log_file)
        raw = log_file.read_text(encoding="utf-8")

    secret = _fail_with_secret_local.last_secret  # type: ignore[attr-defined]
    (record,) = records
    assert record["event"] == "consumer error"
    assert record["service"] == SERVICE
    assert "ValueError" in json.dumps(record["exception"])
    assert secret.split("-")[-1] not in raw


def test_stdlib_library_loggers_come_out_as_json(tmp_path: Path) -> None:
    with json_logging(tmp_path) as log_file:
        logging.getLogger("aiokafka.x").warning("coordinator dead: %s", "group-1")
        logging.getLogger("aiokafka.x").info("chatty rebalance step")  # below WARNING
        logging.getLogger("faststream").info("subscriber started")
        logging.getLogger("uvicorn.error").error("server error")
        logging.getLogger("asyncpg.pool").warning("connection lost")
        records = lines(log_file)

    assert [(r["logger"], r["event"], r["level"]) for r in records] == [
        ("aiokafka.x", "coordinator dead: group-1", "warning"),
        ("faststream", "subscriber started", "info"),
        ("uvicorn.error", "server error", "error"),
        ("asyncpg.pool", "connection lost", "warning"),
    ]
    assert all("timestamp" in r for r in records)


def test_service_name_on_every_line(tmp_path: Path) -> None:
    with json_logging(tmp_path) as log_file:
        get_logger("a").info("one")
        get_logger("b").error("two", service_hint="x")
        logging.getLogger("aiokafka.cluster").error("three")
        logging.getLogger(carelink_logging.broker_logger("intake").name).info("four")
        raw = log_file.read_text(encoding="utf-8")
        records = lines(log_file)

    assert len(records) == 4
    assert len(raw.splitlines()) == 4  # one JSON object per line, nothing else
    assert all(r["service"] == SERVICE for r in records)


def test_restoring_leaves_root_logger_as_before(tmp_path: Path) -> None:
    root = logging.getLogger()
    before = (root.handlers[:], root.level)
    with json_logging(tmp_path):
        assert len(root.handlers) == 1
    assert (root.handlers[:], root.level) == before
