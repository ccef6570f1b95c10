"""CloudEvents 1.0 in Kafka binary mode: attributes as `ce_*` headers, data as the value.

Reading is strict because hospitals write these headers by hand in any client;
every problem is reported as an `EnvelopeError` with a reason a person can act on.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

SPEC_VERSION = "1.0"
CONTENT_TYPE = "application/json"
REQUIRED_HEADERS = ("ce_specversion", "ce_id", "ce_source", "ce_type", "ce_time", "content-type")

Headers = Sequence[tuple[str, bytes]]


class EnvelopeError(ValueError):
    """The record's CloudEvents headers are missing or malformed."""


@dataclass(frozen=True)
class Envelope:
    id: str
    source: str
    type: str
    time: datetime
    subject: str | None = None
    traceparent: str | None = None
    # Internal events carry the id of the event that caused them, for tracing.
    extensions: dict[str, str] = field(default_factory=dict)

    @classmethod
    def new(
        cls,
        *,
        source: str,
        type: str,
        subject: str | None = None,
        time: datetime | None = None,
        event_id: str | None = None,
        extensions: dict[str, str] | None = None,
    ) -> Envelope:
        return cls(
            id=event_id or str(uuid.uuid4()),
            source=source,
            type=type,
            time=time or datetime.now(UTC),
            subject=subject,
            extensions=dict(extensions or {}),
        )

    def to_headers(self) -> list[tuple[str, bytes]]:
        headers = [
            ("ce_specversion", SPEC_VERSION.encode()),
            ("ce_id", self.id.encode()),
            ("ce_source", self.source.encode()),
            ("ce_type", self.type.encode()),
            ("ce_time", self.time.isoformat().encode()),
            ("content-type", CONTENT_TYPE.encode()),
        ]
        if self.subject is not None:
            headers.append(("ce_subject", self.subject.encode()))
        if self.traceparent is not None:
            headers.append(("traceparent", self.traceparent.encode()))
        headers.extend((f"ce_{k}", v.encode()) for k, v in sorted(self.extensions.items()))
        return headers

    @classmethod
    def from_headers(cls, headers: Iterable[tuple[str, bytes]] | None) -> Envelope:
        values: dict[str, str] = {}
        for name, raw in headers or ():
            try:
                values[name.lower()] = raw.decode("utf-8") if raw is not None else ""
            except UnicodeDecodeError as exc:
                raise EnvelopeError(f"header {name} is not UTF-8") from exc
        missing = [h for h in REQUIRED_HEADERS if not values.get(h)]
        if missing:
            raise EnvelopeError(f"missing CloudEvents headers: {', '.join(missing)}")
        if values["ce_specversion"] != SPEC_VERSION:
            raise EnvelopeError(f"ce_specversion must be {SPEC_VERSION}")
        if values["content-type"].split(";")[0].strip() != CONTENT_TYPE:
            raise EnvelopeError(f"content-type must be {CONTENT_TYPE}")
        try:
            time = datetime.fromisoformat(values["ce_time"].replace("Z", "+00:00"))
        except ValueError as exc:
            raise EnvelopeError("ce_time is not an RFC 3339 timestamp") from exc
        if time.tzinfo is None:
            raise EnvelopeError("ce_time must carry a UTC offset")
        known = {*REQUIRED_HEADERS, "ce_subject", "traceparent"}
        extensions = {
            k.removeprefix("ce_"): v
            for k, v in values.items()
            if k.startswith("ce_") and k not in known
        }
        return cls(
            id=values["ce_id"],
            source=values["ce_source"],
            type=values["ce_type"],
            time=time,
            subject=values.get("ce_subject"),
            traceparent=values.get("traceparent"),
            extensions=extensions,
        )
