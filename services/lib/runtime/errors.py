"""How the consumer pipeline tells a passing fault from a record that can never succeed."""

from __future__ import annotations

import asyncio
import errno
import re
import socket

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
# Not every OSError: a handler bug such as FileNotFoundError would block a partition for ever.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    ConnectionError,
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


# OSErrors that mean "the network or a server is not there right now" (a restart, a DNS
# hiccup), as opposed to a bug such as FileNotFoundError.
_NETWORK_ERRNOS = frozenset(
    {
        errno.ENETUNREACH,
        errno.EHOSTUNREACH,
        errno.EHOSTDOWN,
        errno.ENETDOWN,
        errno.ECONNREFUSED,
        errno.ECONNRESET,
        errno.ECONNABORTED,
        errno.ETIMEDOUT,
        errno.EPIPE,
    }
)


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, (*TRANSIENT_ERRORS, socket.gaierror)):
        return True
    if isinstance(exc, asyncpg.ObjectNotInPrerequisiteStateError):
        # SQLSTATE 55000 at connect: the database is closed for connections for a while
        # (maintenance, ALLOW_CONNECTIONS false); elsewhere 55000 is a bug.
        return "not currently accepting connections" in str(exc)
    return isinstance(exc, OSError) and exc.errno in _NETWORK_ERRNOS


def safe_errors(exc: ValidationError) -> list[tuple[str, str, str]]:
    """(field path, message, type) per error, never quoting the submitted value.

    Pydantic's own messages describe the rule, not the value, but a validator's
    message may quote what it refused (email_validator quotes a domain, which can
    be a name): such a message is replaced by a generic one.
    """
    safe = []
    for err in exc.errors(include_url=False):
        field = ".".join(str(part) for part in err["loc"]) or "<root>"
        message = err["msg"]
        # Library validators (email_validator) quote what they refused; carelink's own
        # messages never quote anything.
        quoting = any(mark in message for mark in "'\"\u2018\u2019\u201c\u201d")
        if (err["type"] == "value_error" and quoting) or _quotes(message, err.get("input")):
            message = "value is not valid"
        safe.append((field, message, err["type"]))
    return safe


def _quotes(message: str, value: object) -> bool:
    if not isinstance(value, str):
        return False
    fragments = {f for f in re.split(r"[\s@.,:;/\\'\"()<>\[\]{}-]+", value) if len(f) >= 2}
    folded = message.casefold()
    return any(fragment.casefold() in folded for fragment in fragments)


def describe(exc: BaseException) -> str:
    """A description safe for logs: validation errors without the input values."""
    if isinstance(exc, ValidationError):
        parts = [f"{field}: {message}" for field, message, _ in safe_errors(exc)]
        return f"{exc.title} invalid: " + "; ".join(parts)
    if isinstance(exc, PermanentError):
        return str(exc)
    # Other exceptions' text may quote data (a KeyError quotes the key): log the type only.
    return type(exc).__name__
