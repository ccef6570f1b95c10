"""structlog set up once per process: JSON when not on a terminal, readable on one.

Per-message context (case_id, event_id, topic, offset) lives in contextvars,
bound by the consumer pipeline for one message and cleared after it. Library
loggers (aiokafka, FastStream, asyncpg, uvicorn) go through the same
processors, so every line has the same shape. Personal data is never logged:
log ids and codes, never payloads; tracebacks are rendered without local
variables because those would hold case data.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any, Literal

import structlog

_configured = False


def configure_logging(
    *,
    service: str,
    level: str = "INFO",
    fmt: Literal["auto", "json", "console"] = "auto",
    log_file: Path | None = None,
) -> None:
    global _configured
    use_json = fmt == "json" or (
        fmt == "auto" and (log_file is not None or not sys.stderr.isatty())
    )
    timestamper = structlog.processors.TimeStamper(fmt="iso", utc=True)
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        timestamper,
    ]
    renderer: Any
    if use_json:
        # show_locals=False: a traceback's locals would carry message payloads into the log.
        shared.append(
            structlog.processors.ExceptionRenderer(
                structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
            )
        )
        renderer = structlog.processors.JSONRenderer()
    else:
        renderer = structlog.dev.ConsoleRenderer(
            exception_formatter=structlog.dev.RichTracebackFormatter(show_locals=False)
            if _has_rich()
            else structlog.dev.plain_traceback
        )

    structlog.configure(
        processors=[
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            _add_service(service),
            renderer,
        ],
    )
    handler: logging.Handler
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(log_file, encoding="utf-8")
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # The Kafka client is chatty at INFO (every rebalance step); keep its warnings.
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    for name in ("faststream", "uvicorn", "uvicorn.error", "uvicorn.access"):
        lib = logging.getLogger(name)
        lib.handlers.clear()
        lib.propagate = True
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    _configured = True


def _add_service(service: str) -> Any:
    def processor(_: Any, __: str, event_dict: dict[str, Any]) -> dict[str, Any]:
        event_dict.setdefault("service", service)
        return event_dict

    return processor


def _has_rich() -> bool:
    try:
        import rich  # type: ignore[import-not-found]  # noqa: F401
    except ImportError:
        return False
    return True


def broker_logger(service: str) -> logging.Logger:
    """The logger handed to FastStream: its own loggers do not propagate otherwise."""
    return logging.getLogger(f"carelink.{service}.broker")


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    logger: structlog.stdlib.BoundLogger = structlog.get_logger(name)
    return logger
