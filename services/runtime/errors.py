"""How the consumer pipeline tells a passing fault from a record that can never succeed."""

from __future__ import annotations

import asyncio

import asyncpg
from aiokafka.errors import KafkaError
from pydantic import ValidationError


class PermanentError(Exception):
    """The record can never be handled as it is: dead-letter it and move on.

    The message is written to logs and dead letters: never put values from the
    record into it, only field names and codes.
    """


class TransientFailure(Exception):
    """Retries were used up on a passing fault; the record will be delivered again."""


# Faults that go away by themselves: retry, and never commit past the record.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncio.TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.SerializationError,
    asyncpg.DeadlockDetectedError,
    asyncpg.TooManyConnectionsError,
    asyncpg.OperatorInterventionError,
    asyncpg.QueryCanceledError,
    KafkaError,
)


def is_transient(exc: BaseException) -> bool:
    return isinstance(exc, TRANSIENT_ERRORS)


def describe(exc: BaseException) -> str:
    """A description safe for logs: validation errors without the input values."""
    if isinstance(exc, ValidationError):
        parts = [
            f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}"
            for err in exc.errors(include_input=False, include_url=False)
        ]
        return f"{exc.title} invalid: " + "; ".join(parts)
    if isinstance(exc, PermanentError):
        return str(exc)
    # Other exceptions' text may quote data (a KeyError quotes the key): log the type only.
    return type(exc).__name__
