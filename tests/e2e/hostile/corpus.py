"""Hostile records for `hospital.police-hospital.referrals`, each with the accounting it must get.

Two halves:

- **generated**: documents drawn from the committed JSON Schemas
  (`contracts/schemas/carelink.referral.*.v1.json`, `carelink.patient.discharged.v1.json`) with
  hypothesis + hypothesis-jsonschema, then each MUTATED by one rule derived from the same
  schema: a required member removed, a value of the wrong JSON type, a number or length
  outside its bounds, a string breaking its enum, pattern or format. Every mutant is checked
  against the schema and kept only if the schema refuses it. Drawing is deterministic
  (`derandomize=True`, no example database): the same hypothesis version gives the same corpus.
- **hand-written**: what hand-rolled integrations and hostile senders produce: broken or
  missing CloudEvents headers, truncated and non-UTF-8 bytes, JSON that is not an object,
  wrong types, empty and 1 MB strings, dates in the wrong order or in year 9999, negative
  income, household sizes 0 and 11, another hospital's id, records without a usable key,
  replayed records (same `ce_id`) and follow-ups sent before their submission.

Each entry says where it must be accounted for (`Expect`):

- `update`: the hospital hears about it under its key on `hospital.police-hospital.updates`;
  the first update's status (and reason code for a rejection) is given, and for replays and
  reordered records the whole status trail once everything settled;
- `dead-letter`: it cannot be tied to a submitted referral (no usable key, or a follow-up for a
  referral never submitted: nothing to attach it to, by design) and goes to
  `hospital.police-hospital.referrals.dlq`.

A replay (`replay_of`) is an earlier entry's record again, byte for byte and with the same
`ce_id`: it must produce nothing of its own. Tags name the family an entry belongs to; the
test module decides which tags are known product bugs.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import cache
from pathlib import Path
from typing import Any, Literal

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis_jsonschema import from_schema
from jsonschema import Draft202012Validator, FormatChecker

from contracts import hospital_v1 as hv1
from contracts.cloudevents import Envelope
from services.tools.simulators.referrals import FakeHospital

HOSPITAL = "police-hospital"
OTHER_HOSPITAL = "severance"
TOPIC = f"hospital.{HOSPITAL}.referrals"
SCHEMAS = Path(__file__).resolve().parents[3] / "contracts" / "schemas"
# services.lib.runtime.settings.KafkaSettings.max_record_bytes: larger records are refused unread.
MAX_RECORD_BYTES = 1_000_000

# How many documents to draw per schema (every one is mutated; invalid mutants only are kept).
GENERATED = {hv1.SUBMITTED: 110, hv1.UPDATED: 30, hv1.DISCHARGED: 25, hv1.CANCELLED: 25}

Bucket = Literal["update", "dead-letter"]
Headers = tuple[tuple[str, bytes], ...]


@dataclass(frozen=True)
class Expect:
    bucket: Bucket
    # For "update": the statuses the first update for the key may have ...
    first: tuple[str, ...] = ()
    # ... its reason code when that first update is a rejection (None: not checked) ...
    reason_code: str | None = None
    # ... and every status for the key once settled (None: not checked).
    trail: tuple[str, ...] | None = None


REJECTED = Expect("update", ("rejected",), "invalid-referral")
DEAD_LETTER = Expect("dead-letter")
# Through the automatic rules: received, then received/triaged (revision 2: a status
# of `received` until a coordinator's review accepts it).
TRIAGED = Expect("update", ("received",), None, ("received", "received"))
# The contract promises an answer to every submission; for these, received (then whatever
# the rules say) and rejected / invalid-referral (implausible) are both fair answers.
ANSWERED = Expect("update", ("received", "rejected"), "invalid-referral")


@dataclass(frozen=True)
class Entry:
    name: str
    key: bytes | None
    value: bytes | None
    headers: Headers
    expect: Expect
    replay_of: str | None = None
    tags: frozenset[str] = field(default_factory=frozenset)

    @property
    def referral_id(self) -> str | None:
        """The key as intake reads it (UTF-8, 1..64 characters), or None: no usable key."""
        if self.key is None:
            return None
        try:
            text = self.key.decode("utf-8")
        except UnicodeDecodeError:
            return None
        return text if 0 < len(text) <= 64 else None


def build_corpus(run: str) -> list[Entry]:
    """The whole corpus; `run` (a few letters, unique per test run) makes every key unique."""
    builder = _Builder(run)
    builder.generated()
    builder.envelopes()
    builder.values()
    builder.fields()
    builder.dates()
    builder.sizes()
    builder.keys()
    builder.follow_ups()
    builder.replays()
    builder.reorders()
    builder.lax_types()
    entries = builder.entries
    names = [e.name for e in entries]
    assert len(names) == len(set(names)), "corpus entry names must be unique"
    return entries


# ------------------------------------------------------------------ generation from the schemas


def load_schema(ce_type: str) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads((SCHEMAS / f"{ce_type}.json").read_text())
    return schema


def _closed(node: Any) -> Any:
    """The schema with `additionalProperties: false` on its objects, for drawing only.

    The contract tolerates extra members; drawing arbitrary ones makes generation slow
    and adds nothing a mutation tests (extra members are covered by hand).
    """
    if isinstance(node, list):
        return [_closed(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _closed(value) for key, value in node.items()}
    if out.get("type") == "object" and "properties" in out:
        out.setdefault("additionalProperties", False)
    return out


_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
_FULL_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_formats = FormatChecker()


@_formats.checks("date-time", raises=ValueError)
def _is_datetime(value: object) -> bool:
    if not isinstance(value, str):
        return True
    if not _RFC3339.match(value):
        return False
    datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    return True


@_formats.checks("date", raises=ValueError)
def _is_date(value: object) -> bool:
    if not isinstance(value, str):
        return True
    if not _FULL_DATE.match(value):
        return False
    date.fromisoformat(value)
    return True


def schema_accepts(ce_type: str, document: Any) -> bool:
    """Whether the committed schema (with its formats checked) accepts the document."""
    validator = Draft202012Validator(load_schema(ce_type), format_checker=_formats)
    return bool(validator.is_valid(document))


_DELETE = object()


@dataclass(frozen=True)
class Mutation:
    kind: str  # missing | wrong-type | out-of-range | format
    path: tuple[str, ...]
    value: Any = _DELETE

    @property
    def label(self) -> str:
        return f"{self.kind}:{'.'.join(self.path)}"

    def apply(self, document: dict[str, Any]) -> dict[str, Any] | None:
        """A mutated copy, or None when the path's parent is not an object in this document."""
        mutated = copy.deepcopy(document)
        parent: Any = mutated
        for part in self.path[:-1]:
            parent = parent.get(part) if isinstance(parent, dict) else None
        if not isinstance(parent, dict):
            return None
        name = self.path[-1]
        if self.value is _DELETE:
            if name not in parent:
                return None
            del parent[name]
        else:
            parent[name] = copy.deepcopy(self.value)
        return mutated


def _resolve(root: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        ref = node["$ref"]
        assert ref.startswith("#/$defs/"), ref
        node = root["$defs"][ref.removeprefix("#/$defs/")]
    return node


def schema_mutations(root: dict[str, Any]) -> list[Mutation]:
    """Every single-point mutation the schema forbids, derived from its keywords.

    Replacement values are chosen so that no lenient parser could read them as the right
    type (no "3" for an integer, no 1 for a boolean, no number for a date): those are the
    hand-written `lax-json-types` entries.
    """
    found: list[Mutation] = []

    def walk(node: dict[str, Any], path: tuple[str, ...], required: bool) -> None:
        node = _resolve(root, node)
        nullable = False
        if "anyOf" in node:
            branches = [_resolve(root, branch) for branch in node["anyOf"]]
            nullable = any(branch.get("type") == "null" for branch in branches)
            concrete = [branch for branch in branches if branch.get("type") != "null"]
            node = concrete[0] if concrete else {}
        if path and required:
            found.append(Mutation("missing", path))
        if path and not nullable:
            found.append(Mutation("wrong-type", path, None))
        kind = node.get("type")
        if kind == "object":
            if path:
                found.append(Mutation("wrong-type", path, "an object was expected"))
                found.append(Mutation("wrong-type", path, []))
            required_names = set(node.get("required", ()))
            for name, sub in node.get("properties", {}).items():
                walk(sub, (*path, name), name in required_names)
        elif kind == "array":
            found.append(Mutation("wrong-type", path, {"items": []}))
            found.append(Mutation("wrong-type", path, "meal_delivery"))
            item = _resolve(root, node.get("items", {}))
            if node.get("minItems", 0) > 0:
                found.append(Mutation("out-of-range", path, []))
            if "maxItems" in node and "enum" in item:
                too_many = [
                    item["enum"][i % len(item["enum"])] for i in range(node["maxItems"] + 1)
                ]
                found.append(Mutation("out-of-range", path, too_many))
            if "enum" in item:
                found.append(Mutation("out-of-range", path, ["teleportation"]))
        elif kind == "string":
            fmt = node.get("format")
            found.append(Mutation("wrong-type", path, ["text"]))
            found.append(Mutation("wrong-type", path, {"text": "x"}))
            if fmt not in ("date", "date-time"):
                found.append(Mutation("wrong-type", path, 12345))
            if node.get("minLength", 0) >= 1:
                found.append(Mutation("out-of-range", path, ""))
            if "maxLength" in node:
                found.append(Mutation("out-of-range", path, "x" * (node["maxLength"] + 1)))
            if "enum" in node:
                found.append(Mutation("out-of-range", path, "not-one-of-the-codes"))
            if "pattern" in node:
                found.append(Mutation("format", path, "Not A Slug!"))
            for bad in {
                "date": ["2024-02-30", "30/01/2024", "yesterday"],
                "date-time": ["2024-01-01T09:00:00", "yesterday", "2024-01-01 09:00"],
                "email": ["not-an-email", "two@@example.org"],
            }.get(fmt or "", []):
                found.append(Mutation("format", path, bad))
        elif kind == "integer":
            found.extend(Mutation("wrong-type", path, bad) for bad in ("many", [3], {"n": 3}, 2.5))
            if "minimum" in node:
                found.append(Mutation("out-of-range", path, node["minimum"] - 1))
            if "maximum" in node:
                found.append(Mutation("out-of-range", path, node["maximum"] + 1))
        elif kind == "boolean":
            found.extend(
                Mutation("wrong-type", path, bad) for bad in ("perhaps", [True], {"v": True}, 2)
            )

    walk(root, (), True)
    return found


@cache
def _drawn(ce_type: str, count: int) -> tuple[tuple[str, Mutation], ...]:
    """`count` (document, mutation) pairs drawn deterministically; documents as JSON text."""
    schema = load_schema(ce_type)
    menu = schema_mutations(schema)
    drawn: list[tuple[str, Mutation]] = []

    @settings(
        max_examples=count,
        database=None,
        derandomize=True,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
        print_blob=False,
    )
    @given(document=from_schema(_closed(schema)), pick=st.integers(0, len(menu) - 1))
    def collect(document: dict[str, Any], pick: int) -> None:
        drawn.append((json.dumps(document), menu[pick]))

    collect()
    return tuple(drawn)


# ------------------------------------------------------------------ the builder


def _json(data: Any) -> bytes:
    try:
        return json.dumps(data, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: keep it, escaped
        return json.dumps(data).encode("utf-8")


def _without(headers: Sequence[tuple[str, bytes]], *names: str) -> Headers:
    return tuple((n, v) for n, v in headers if n not in names)


def _replacing(headers: Sequence[tuple[str, bytes]], name: str, value: bytes) -> Headers:
    return tuple((n, value if n == name else v) for n, v in headers)


class _Builder:
    def __init__(self, run: str) -> None:
        assert re.fullmatch(r"[a-z0-9]{1,12}", run), run
        self.run = run
        self.hospital = FakeHospital(HOSPITAL, seed=2022)
        self.entries: list[Entry] = []
        self._count = 0

    # -- helpers -----------------------------------------------------------------------

    def new_key(self) -> str:
        self._count += 1
        return f"hostile-{self.run}-{self._count:03d}"

    def submission(self, key: str, **overrides: Any) -> dict[str, Any]:
        data = self.hospital.submission(referral_id=key, **overrides)
        # One person per referral: no two corpus entries (nor other tests) link into one case.
        data["patient"]["name"] = f"적대 검사 {key}"
        return data

    def headers(self, key: str | None, ce_type: str = hv1.SUBMITTED) -> Headers:
        envelope = Envelope.new(source=f"hospital/{HOSPITAL}", type=ce_type, subject=key)
        return tuple(envelope.to_headers())

    def add(
        self,
        name: str,
        key: str | bytes | None,
        value: bytes | None,
        headers: Headers,
        expect: Expect,
        *tags: str,
        replay_of: str | None = None,
    ) -> Entry:
        raw_key = key.encode() if isinstance(key, str) else key
        entry = Entry(
            name, raw_key, value, headers, expect, replay_of=replay_of, tags=frozenset(tags)
        )
        self.entries.append(entry)
        return entry

    def submitted(self, name: str, expect: Expect, *tags: str, **overrides: Any) -> Entry:
        """A submission with fields overridden (`patient__household_size=0` for nested ones)."""
        key = self.new_key()
        data = self.submission(key)
        for dotted, value in overrides.items():
            _set(data, dotted.split("__"), value)
        return self.add(name, key, _json(data), self.headers(key), expect, *tags)

    # -- generated from the schemas ---------------------------------------------------------

    def generated(self) -> None:
        for ce_type, count in GENERATED.items():
            short = ce_type.removeprefix("carelink.").removesuffix(".v1")
            for index, (text, mutation) in enumerate(_drawn(ce_type, count)):
                key = self.new_key()
                document = json.loads(text)
                # The referral and hospital the record claims are the key's and the topic's:
                # only the mutation makes it invalid (unless the mutation is about those two).
                document["referral_id"] = key
                document["hospital_id"] = HOSPITAL
                mutant = mutation.apply(document)
                if mutant is None or schema_accepts(ce_type, mutant):
                    continue
                self.add(
                    f"generated/{short}/{index:03d}/{mutation.label}",
                    key,
                    _json(mutant),
                    self.headers(key, ce_type),
                    REJECTED,
                    "generated",
                    f"mutation:{mutation.kind}",
                )

    # -- the CloudEvents envelope --------------------------------------------------------

    def envelopes(self) -> None:
        for header in (
            "ce_specversion",
            "ce_id",
            "ce_source",
            "ce_type",
            "ce_time",
            "content-type",
        ):
            key = self.new_key()
            self.add(
                f"envelope/missing-{header}",
                key,
                _json(self.submission(key)),
                _without(self.headers(key), header),
                REJECTED,
                "envelope",
            )
        wrong: dict[str, tuple[str, bytes]] = {
            "specversion-0.3": ("ce_specversion", b"0.3"),
            "ce_time-not-a-time": ("ce_time", b"yesterday"),
            "ce_time-without-offset": ("ce_time", b"2025-03-01T09:00:00"),
            "ce_time-impossible-date": ("ce_time", b"2025-02-30T09:00:00+09:00"),
            "content-type-text-plain": ("content-type", b"text/plain"),
            "content-type-structured-mode": ("content-type", b"application/cloudevents+json"),
            "unknown-ce_type": ("ce_type", b"carelink.referral.submitted.v9"),
            "foreign-ce_type": ("ce_type", b"com.example.order.created"),
            "ce_type-empty": ("ce_type", b""),
            "ce_id-empty": ("ce_id", b""),
            "ce_source-not-utf8": ("ce_source", b"\xff\xfehospital"),
            "ce_type-not-utf8": ("ce_type", "carelink.referral.submitted.v1".encode("utf-16")),
        }
        for label, (header, value) in wrong.items():
            key = self.new_key()
            self.add(
                f"envelope/{label}",
                key,
                _json(self.submission(key)),
                _replacing(self.headers(key), header, value),
                REJECTED,
                "envelope",
            )
        key = self.new_key()
        self.add(
            "envelope/no-headers-at-all", key, _json(self.submission(key)), (), REJECTED, "envelope"
        )
        # A submission's data under a follow-up's type: validated as a cancellation, refused.
        key = self.new_key()
        self.add(
            "envelope/submission-data-as-cancelled",
            key,
            _json(self.submission(key)),
            self.headers(key, hv1.CANCELLED),
            REJECTED,
            "envelope",
        )

    # -- the value's bytes ----------------------------------------------------------------

    def values(self) -> None:
        def raw(label: str, make: Any, expect: Expect = REJECTED, *tags: str) -> None:
            key = self.new_key()
            value = make(self.submission(key)) if callable(make) else make
            self.add(f"value/{label}", key, value, self.headers(key), expect, "value", *tags)

        raw("truncated-half", lambda d: _json(d)[: len(_json(d)) // 2])
        raw("truncated-last-byte", lambda d: _json(d)[:-1])
        raw("truncated-inside-hangul", lambda d: _cut_inside_hangul(_json(d)))
        raw("empty", b"")
        raw("null-value-tombstone", None)
        raw("not-utf8-garbage", b"\xff\xfe\xfd\xfc not json, not utf-8 \x80\x81")
        raw("cp949-encoded", lambda d: json.dumps(d, ensure_ascii=False).encode("cp949", "replace"))
        raw("latin1-encoded", lambda d: _latin1(d))
        raw("overlong-utf8-slash", lambda d: _json(d).replace(b'"', b'"\xc0\xaf', 1))
        # RFC 8259 lets a parser ignore a byte order mark or refuse it: either, but answered.
        raw("utf8-bom", lambda d: b"\xef\xbb\xbf" + _json(d), ANSWERED)
        raw(
            "utf16-encoded",
            lambda d: json.dumps(d, ensure_ascii=False).encode("utf-16"),
            REJECTED,
            "non-utf8-json",
        )
        raw("json-array", b"[1, 2, 3]")
        raw("json-string", b'"a referral"')
        raw("json-number", b"42")
        raw("json-null", b"null")
        raw("nan-constant", lambda d: json.dumps({**d, "x_score": float("nan")}).encode())
        raw(
            "infinity-constant",
            lambda d: _json(d).replace(b'"household_size": 1', b'"household_size": Infinity'),
        )
        raw(
            "float-overflow",
            lambda d: _json(d).replace(b'"household_size": 1', b'"household_size": 1e400'),
        )
        raw(
            "int-5000-digits",
            lambda d: _json(d).replace(b'"household_size": 1', b'"household_size": ' + b"9" * 5000),
        )
        raw("nul-in-name", lambda d: _json(_with(d, "patient.name", "김\x00철수")))
        raw(
            "nul-in-member-name",
            lambda d: _json({**d, "x\x00y": 1}),
            REJECTED,
            "nul-member-name",
        )
        raw(
            "nested-100k-deep",
            b'{"referral_id": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
            REJECTED,
            "deep-json",
        )
        raw(
            "extra-members-tolerated",
            lambda d: _json({**d, "x_ward": "7B", "x_bed": [1, 2]}),
            TRIAGED,
        )

    # -- fields: wrong types, empty strings, bounds, other hospital ----------------------------

    def fields(self) -> None:
        self.submitted("field/household-size-0", REJECTED, "bounds", patient__household_size=0)
        self.submitted("field/household-size-11", REJECTED, "bounds", patient__household_size=11)
        self.submitted(
            "field/household-size-negative", REJECTED, "bounds", patient__household_size=-3
        )
        self.submitted(
            "field/income-negative", REJECTED, "bounds", patient__monthly_household_income_krw=-1
        )
        self.submitted(
            "field/income-negative-large",
            REJECTED,
            "bounds",
            patient__monthly_household_income_krw=-2_500_000,
        )
        self.submitted("field/patient-name-empty", REJECTED, "empty", patient__name="")
        self.submitted("field/patient-name-blank", REJECTED, "empty", patient__name="   ")
        self.submitted("field/dong-empty", REJECTED, "empty", patient__address__dong="")
        self.submitted(
            "field/social-worker-phone-empty", REJECTED, "empty", social_worker__phone=""
        )
        self.submitted("field/requested-services-empty", REJECTED, "empty", requested_services=[])
        self.submitted(
            "field/care-precautions-empty-is-fine", TRIAGED, "empty", care_precautions=""
        )
        self.submitted("field/sex-lowercase", REJECTED, "enum", patient__sex="f")
        self.submitted("field/priority-uppercase", REJECTED, "enum", priority="URGENT")
        self.submitted("field/consent-method-fax", REJECTED, "enum", consent__method="fax")
        self.submitted("field/patient-a-string", REJECTED, "type", patient="김철수, 72세")
        self.submitted(
            "field/services-a-string", REJECTED, "type", requested_services="meal_delivery"
        )
        self.submitted("field/consent-a-list", REJECTED, "type", consent=[True])
        self.submitted("field/household-size-list", REJECTED, "type", patient__household_size=[1])
        self.submitted("field/email-not-an-email", REJECTED, "format", social_worker__email="nope")
        # Another hospital's id, written by the Police Hospital: refused, and never told to them.
        self.submitted(
            "field/hospital-id-severance",
            Expect("update", ("rejected",), "unknown-hospital"),
            "other-hospital",
            hospital_id=OTHER_HOSPITAL,
        )
        self.submitted(
            "field/hospital-id-not-a-slug", REJECTED, "other-hospital", hospital_id="Severance!"
        )
        key = self.new_key()
        data = self.submission(key)
        data["referral_id"] = f"{key}-other"
        self.add(
            "field/referral-id-differs-from-key", key, _json(data), self.headers(key), REJECTED
        )
        key = self.new_key()
        data = self.submission(key)
        del data["referral_id"]
        self.add("field/referral-id-missing", key, _json(data), self.headers(key), REJECTED)

    # -- dates -------------------------------------------------------------------------------

    def dates(self) -> None:
        today = datetime.now(UTC).date()
        self.submitted(
            "date/discharge-before-admission",
            REJECTED,
            "dates",
            admission_date=today.isoformat(),
            expected_discharge_date=date(today.year - 1, 1, 1).isoformat(),
        )
        self.submitted(
            "date/discharge-year-9999", ANSWERED, "dates", expected_discharge_date="9999-12-31"
        )
        self.submitted(
            "date/admission-and-discharge-year-9999",
            ANSWERED,
            "dates",
            admission_date="9999-12-30",
            expected_discharge_date="9999-12-31",
        )
        self.submitted(
            "date/consent-obtained-year-9999",
            ANSWERED,
            "dates",
            consent__obtained_at="9999-12-31T23:59:59+09:00",
        )
        self.submitted(
            "date/birth-date-impossible", REJECTED, "dates", patient__birth_date="1950-02-30"
        )
        self.submitted(
            "date/birth-date-year-0", REJECTED, "dates", patient__birth_date="0000-01-01"
        )
        self.submitted(
            "date/submitted-without-offset", REJECTED, "dates", submitted_at="2025-03-01T09:00:00"
        )
        self.submitted(
            "date/submitted-year-10000",
            REJECTED,
            "dates",
            submitted_at="10000-01-01T00:00:00+00:00",
        )
        # JSON-valid, so the contract promises an answer: received then triaged or rejected.
        self.submitted(
            "date/submitted-end-of-year-9999",
            ANSWERED,
            "dates",
            "keyed-dead-lettered",
            submitted_at="9999-12-31T23:00:00+00:00",
        )
        self.submitted(
            "date/submitted-before-any-policy",
            ANSWERED,
            "dates",
            submitted_at="2019-06-01T09:00:00+09:00",
        )
        self.submitted(
            "date/born-year-9999",
            ANSWERED,
            "dates",
            patient__birth_date="9999-01-01",
        )

    # -- sizes ---------------------------------------------------------------------------------

    def sizes(self) -> None:
        self.submitted("size/care-precautions-4001", REJECTED, "size", care_precautions="낙" * 4001)
        self.submitted(
            "size/care-precautions-900k", REJECTED, "size", care_precautions="x" * 900_000
        )
        entry = self.submitted(
            "size/care-precautions-1MB", REJECTED, "size", care_precautions="x" * MAX_RECORD_BYTES
        )
        assert entry.value is not None
        assert len(entry.value) > MAX_RECORD_BYTES
        self.submitted("size/name-1MB-of-hangul", REJECTED, "size", patient__name="가" * 350_000)
        # Without a key, a record over the limit can only be dead-lettered. Kept just over the
        # limit: the dead letter carries the original bytes and must fit the relay's producer.
        data = self.submission(self.new_key(), care_precautions="x" * MAX_RECORD_BYTES)
        self.add(
            "size/care-precautions-1MB-no-key",
            None,
            _json(data),
            self.headers(None),
            DEAD_LETTER,
            "size",
            "no-key",
        )

    # -- keys --------------------------------------------------------------------------------

    def keys(self) -> None:
        def keyless(label: str, key: bytes | None, value: bytes | None, headers: Headers) -> None:
            self.add(f"key/{label}", key, value, headers, DEAD_LETTER, "no-key")

        data = self.submission(self.new_key())
        keyless("none-valid-submission", None, _json(data), self.headers(data["referral_id"]))
        keyless("none-garbage", None, b"\x00\xff garbage", self.headers(None))
        keyless("none-no-headers-truncated", None, _json(self.submission(self.new_key()))[:40], ())
        keyless("none-empty-value", None, b"", ())
        keyless("empty", b"", _json(self.submission(self.new_key())), self.headers(None))
        keyless("not-utf8", b"\xff\xfe" + self.new_key().encode(), b"{}", self.headers(None))
        long_key = (self.new_key() + "-").ljust(65, "x")
        keyless(
            "65-characters",
            long_key.encode(),
            _json(self.submission(long_key[:64])),
            self.headers(long_key),
        )
        # UTF-8 and short enough, but PostgreSQL text cannot hold NUL: unusable as a referral id.
        nul_key = f"{self.new_key()}\x00nul"
        keyless(
            "with-nul", nul_key.encode(), _json(self.submission(nul_key)), self.headers(nul_key)
        )
        data = self.submission(self.new_key())
        keyless(
            "none-follow-up",
            None,
            _json(self._follow_up_data(hv1.DISCHARGED, data["referral_id"])),
            self.headers(None, hv1.DISCHARGED),
        )
        key = (self.new_key() + "-").ljust(64, "k")
        self.add(
            "key/64-characters",
            key,
            _json(self.submission(key)),
            self.headers(key),
            TRIAGED,
            "keys",
        )

    # -- follow-ups for referrals never submitted -----------------------------------------------

    def _follow_up_data(self, ce_type: str, key: str) -> dict[str, Any]:
        now = datetime.now(UTC).isoformat()
        base: dict[str, Any] = {"referral_id": key, "hospital_id": HOSPITAL}
        if ce_type == hv1.DISCHARGED:
            return {**base, "discharged_at": now}
        if ce_type == hv1.CANCELLED:
            return {**base, "cancelled_at": now, "reason_code": "transferred", "reason": "전원"}
        return {**base, "updated_at": now, "expected_discharge_date": date.today().isoformat()}

    def follow_ups(self) -> None:
        for ce_type in (hv1.DISCHARGED, hv1.CANCELLED, hv1.UPDATED):
            key = self.new_key()
            self.add(
                f"follow-up/never-submitted/{ce_type}",
                key,
                _json(self._follow_up_data(ce_type, key)),
                self.headers(key, ce_type),
                DEAD_LETTER,
                "never-submitted",
            )

    # -- replays: the same record twice, same ce_id ------------------------------------------------

    def replays(self) -> None:
        key = self.new_key()
        original = self.add(
            "replay/valid-submission",
            key,
            _json(self.submission(key)),
            self.headers(key),
            TRIAGED,
            "replay",
        )
        self._again(original)
        key = self.new_key()
        original = self.add(
            "replay/invalid-submission",
            key,
            _json(self.submission(key, household_size=0)),
            self.headers(key),
            Expect("update", ("rejected",), "invalid-referral", ("rejected",)),
            "replay",
        )
        self._again(original)
        original = self.add(
            "replay/keyless",
            None,
            b"replayed garbage, no key",
            self.headers(None),
            DEAD_LETTER,
            "replay",
        )
        self._again(original)

    def _again(self, original: Entry) -> None:
        self.entries.append(
            Entry(
                f"{original.name}/again",
                original.key,
                original.value,
                original.headers,
                original.expect,
                replay_of=original.name,
                tags=original.tags,
            )
        )

    # -- reordered: a follow-up before its submission ------------------------------------------------

    def reorders(self) -> None:
        for ce_type in (hv1.CANCELLED, hv1.DISCHARGED, hv1.UPDATED):
            key = self.new_key()
            short = ce_type.removeprefix("carelink.").removesuffix(".v1")
            # Nothing to tie the follow-up to yet: dead-lettered for an operator to replay.
            self.add(
                f"reorder/{short}-first",
                key,
                _json(self._follow_up_data(ce_type, key)),
                self.headers(key, ce_type),
                DEAD_LETTER,
                "reorder",
            )
            # The submission then opens the case as usual: the early follow-up changed nothing.
            self.add(
                f"reorder/{short}-then-submitted",
                key,
                _json(self.submission(key)),
                self.headers(key),
                TRIAGED,
                "reorder",
            )

    # -- wrong JSON types a lenient parser reads as right ---------------------------------------------

    def lax_types(self) -> None:
        """Schema-invalid documents of the kind hand-rolled serializers produce."""
        lax = {
            "household-size-string": {"patient__household_size": "1"},
            "household-size-true": {"patient__household_size": True},
            "income-string": {"patient__monthly_household_income_krw": "1200000"},
            "consent-given-1": {"consent__given": 1},
            "consent-given-yes": {"consent__given": "yes"},
            "lives-alone-string-true": {"patient__lives_alone": "true"},
            "birth-date-unix-zero": {"patient__birth_date": 0},
            "birth-date-as-datetime": {"patient__birth_date": "1950-05-01T00:00:00"},
            "submitted-at-epoch-seconds": {"submitted_at": 1_740_787_200},
        }
        for label, overrides in lax.items():
            entry = self.submitted(f"lax/{label}", REJECTED, "lax-json-types", **overrides)
            assert entry.value is not None
            assert not schema_accepts(hv1.SUBMITTED, json.loads(entry.value)), label


# ------------------------------------------------------------------ small helpers


def _set(data: dict[str, Any], path: Sequence[str], value: Any) -> None:
    for part in path[:-1]:
        data = data[part]
    data[path[-1]] = value


def _with(data: dict[str, Any], dotted: str, value: Any) -> dict[str, Any]:
    copied = copy.deepcopy(data)
    _set(copied, dotted.split("."), value)
    return copied


def _cut_inside_hangul(encoded: bytes) -> bytes:
    """Cut in the middle of a multi-byte character: neither valid UTF-8 nor complete JSON."""
    at = encoded.index("적".encode())
    return encoded[: at + 1]


def _latin1(data: dict[str, Any]) -> bytes:
    data = _with(data, "patient.address.detail", "Résidence 7B")
    data = _with(data, "patient.name", "Renée Müller")
    return json.dumps(data, ensure_ascii=False).encode("latin-1", errors="replace")


def by_name(entries: Sequence[Entry]) -> dict[str, Entry]:
    return {entry.name: entry for entry in entries}


def tagged(entries: Sequence[Entry], tag: str) -> Iterator[Entry]:
    return (entry for entry in entries if tag in entry.tags)
