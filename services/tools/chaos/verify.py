"""What a chaos run must prove, as pure functions over facts already collected.

Inputs are plain records: what the simulated hospitals sent, every update record
read back from their `hospital.<id>.updates` topics (repeats included), and rows
read from the four service databases. Nothing here talks to a server, so every
rule is unit-tested on its own (tests/unit/chaos/test_verify.py).

The rules, from the hospital contract and the delivery guarantees:

- every referral sent gets updates and ends in a terminal status;
- per referral, after dropping repeats of the same `ce_id` (allowed: at-least-once
  delivery), the sequences are exactly 1..n, first seen in that order, and one
  `ce_id` never carries two different updates;
- nothing changes after the terminal status (a repeat of it is allowed);
- every referral's statuses keep the contract's FHIR Task table (`contracts.fhir_task`,
  the table the outcome service applies): an illegal path fails the run;
- the databases agree with the topics: outcome's last sequence per referral is
  the last one on the topic, every outbox row marked published is on the topic,
  and a referral told a terminal status has its case closed, with no live task,
  in every service (else a closing event was lost on the way to one of them);
- nothing exists twice: a referral in intake, a case per referral (except
  referrals linked to a person's open case), a plan per case, two live tasks of
  one kind per case, two tasks of one kind done for a case, two `completed`
  updates (outcome reports) per referral;
- every outbox is drained and no valid record went to a dead-letter topic.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from contracts.fhir_task import check_path

TERMINAL = ("completed", "cancelled", "failed", "rejected")
LIVE_TASK = ("open", "claimed", "suspended")

# Problem kinds. The first group means the product lost or duplicated something (or
# left it unfinished); the harness group means the run proved nothing either way.
LOSS = "LOSS"
DUPLICATE = "DUPLICATE"
ORDER = "ORDER"
STUCK = "STUCK"
UNDRAINED = "UNDRAINED"
ILLEGAL = "ILLEGAL"  # a status path the contract's FHIR Task table does not allow
HARNESS = "HARNESS"
PRODUCT_KINDS = (LOSS, DUPLICATE, ORDER, STUCK, UNDRAINED, ILLEGAL)

PASS = "PASS"  # noqa: S105 (a verdict, not a password)
FAIL = "FAIL"
INCONCLUSIVE = "INCONCLUSIVE"


# -- facts ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SentReferral:
    """A referral a simulated hospital submitted (or was about to)."""

    hospital_id: str
    referral_id: str
    kind: str = ""
    expected_status: str | None = None
    sent: bool = True


@dataclass(frozen=True)
class ObservedUpdate:
    """One record read from `hospital.<topic_hospital>.updates`, repeats included."""

    topic_hospital: str
    referral_id: str
    ce_id: str
    sequence: int
    status: str
    business_status: str
    case_id: str | None = None
    partition: int = 0
    offset: int = 0
    # A digest of the record's data: two records with one ce_id must carry the same.
    digest: str = ""


@dataclass(frozen=True)
class IntakeReferral:
    hospital_id: str
    referral_id: str
    case_id: str
    outcome: str  # accepted | linked | rejected:<reason>


@dataclass(frozen=True)
class CaseRow:
    """A case as referral or scheduling knows it (their `cases` tables)."""

    case_id: str
    hospital_id: str
    referral_id: str


@dataclass(frozen=True)
class TaskRow:
    service: str  # referral | scheduling
    task_id: int
    case_id: str
    kind: str
    status: str


@dataclass(frozen=True)
class OutcomeReferral:
    hospital_id: str
    referral_id: str
    case_id: str
    sequence: int  # the last sequence outcome assigned


@dataclass(frozen=True)
class OutboxUpdate:
    """A status update row in outcome's outbox."""

    row_id: int
    hospital_id: str
    referral_id: str
    sequence: int
    status: str
    published: bool


@dataclass(frozen=True)
class DeadLetter:
    service: str
    consumer: str
    event_id: str
    topic: str = ""
    error: str = ""


@dataclass
class DatabaseFacts:
    intake_referrals: list[IntakeReferral] = field(default_factory=list)
    intake_cases: list[str] = field(default_factory=list)
    referral_cases: list[CaseRow] = field(default_factory=list)
    plans: list[str] = field(default_factory=list)  # case ids, one per plan row
    scheduling_cases: list[CaseRow] = field(default_factory=list)
    tasks: list[TaskRow] = field(default_factory=list)
    outcome_referrals: list[OutcomeReferral] = field(default_factory=list)
    outcome_updates: list[OutboxUpdate] = field(default_factory=list)
    unpublished: dict[str, int] = field(default_factory=dict)  # service -> outbox rows
    # Per service, the cases it still holds open (intake: open; referral, scheduling: not
    # closed). None: not read.
    open_cases: dict[str, list[str]] | None = None
    dead_letters: list[DeadLetter] = field(default_factory=list)


@dataclass(frozen=True)
class Problem:
    kind: str
    what: str
    detail: str
    hospital_id: str | None = None
    referral_id: str | None = None
    evidence: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["evidence"] = dict(self.evidence)
        return data


# -- per-referral sequence rules -------------------------------------------------------


@dataclass(frozen=True)
class SequenceCheck:
    """One referral's updates after dropping same-ce_id repeats."""

    updates: tuple[ObservedUpdate, ...]  # deduplicated, in the order first seen
    repeats_dropped: int
    missing: tuple[int, ...]  # gaps in 1..max
    repeated: tuple[int, ...]  # sequences carried by two different ce_ids
    conflicting_ce_ids: tuple[str, ...]  # one ce_id, two different updates
    out_of_order: tuple[int, ...]  # sequences first seen after a higher one

    @property
    def sequences(self) -> list[int]:
        return [u.sequence for u in self.updates]

    @property
    def ok(self) -> bool:
        return not (self.missing or self.repeated or self.conflicting_ce_ids or self.out_of_order)

    def by_sequence(self) -> list[ObservedUpdate]:
        return sorted(self.updates, key=lambda u: u.sequence)


def topic_order(updates: Iterable[ObservedUpdate]) -> list[ObservedUpdate]:
    """Updates in the order a hospital reads them: one referral's records share a key,
    so a partition; offsets order them."""
    return sorted(updates, key=lambda u: (u.topic_hospital, u.partition, u.offset))


def check_sequences(updates: Sequence[ObservedUpdate]) -> SequenceCheck:
    """Dedupe by ce_id first (a repeat is allowed), then check 1..n, no repeats, in order."""
    first: dict[str, ObservedUpdate] = {}
    conflicting: list[str] = []
    repeats = 0
    for update in topic_order(updates):
        seen = first.get(update.ce_id)
        if seen is None:
            first[update.ce_id] = update
            continue
        repeats += 1
        same = (seen.sequence, seen.status, seen.business_status, seen.digest) == (
            update.sequence,
            update.status,
            update.business_status,
            update.digest,
        )
        if not same and update.ce_id not in conflicting:
            conflicting.append(update.ce_id)
    kept = list(first.values())
    counts = Counter(u.sequence for u in kept)
    top = max(counts, default=0)
    missing = tuple(s for s in range(1, top + 1) if s not in counts)
    repeated = tuple(sorted(s for s, n in counts.items() if n > 1))
    out_of_order: list[int] = []
    highest = 0
    for update in kept:
        if update.sequence < highest and update.sequence not in out_of_order:
            out_of_order.append(update.sequence)
        highest = max(highest, update.sequence)
    return SequenceCheck(
        updates=tuple(kept),
        repeats_dropped=repeats,
        missing=missing,
        repeated=repeated,
        conflicting_ce_ids=tuple(conflicting),
        out_of_order=tuple(out_of_order),
    )


def final_status(check: SequenceCheck) -> str | None:
    """The status of the highest sequence, None without updates."""
    ordered = check.by_sequence()
    return ordered[-1].status if ordered else None


def changes_after_terminal(check: SequenceCheck) -> list[ObservedUpdate]:
    """Updates after the first terminal one that are not a repeat of its status."""
    ordered = check.by_sequence()
    for index, update in enumerate(ordered):
        if update.status in TERMINAL:
            return [u for u in ordered[index + 1 :] if u.status != update.status]
    return []


def trail(check: SequenceCheck) -> list[str]:
    return [f"{u.sequence}:{u.status}/{u.business_status}" for u in check.by_sequence()]


# -- the whole run ----------------------------------------------------------------------


@dataclass
class Verification:
    verdict: str
    counts: dict[str, Any]
    problems: list[Problem]
    notes: list[str]

    def problems_of(self, kind: str) -> list[Problem]:
        return [p for p in self.problems if p.kind == kind]

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "counts": self.counts,
            "problems": [p.to_dict() for p in self.problems],
            "notes": self.notes,
        }


@dataclass
class HarnessFacts:
    """What the harness itself reports: it decides between a verdict and INCONCLUSIVE."""

    planned: int = 0
    faults_planned: int = 0
    faults_injected: int = 0
    quiescent: bool = True
    # The load's time bound passed while referrals were still reaching terminal statuses:
    # a referral not terminal then was slow, not provably stuck.
    cut_short: bool = False
    errors: list[str] = field(default_factory=list)


def verify(
    sent: Sequence[SentReferral],
    updates: Sequence[ObservedUpdate],
    db: DatabaseFacts,
    harness: HarnessFacts | None = None,
    *,
    max_examples: int = 20,
) -> Verification:
    harness = harness or HarnessFacts(planned=len(sent))
    problems: list[Problem] = []
    notes: list[str] = []
    submitted = [s for s in sent if s.sent]
    ours = {(s.hospital_id, s.referral_id): s for s in submitted}
    by_referral_id = {s.referral_id: s for s in submitted}

    grouped: dict[tuple[str, str], list[ObservedUpdate]] = defaultdict(list)
    for update in updates:
        owner = by_referral_id.get(update.referral_id)
        if owner is None:
            continue  # another run's referral on a shared topic
        if update.topic_hospital != owner.hospital_id:
            problems.append(
                Problem(
                    DUPLICATE,
                    "update on another hospital's topic",
                    f"sequence {update.sequence} ({update.status}) reached "
                    f"hospital.{update.topic_hospital}.updates",
                    owner.hospital_id,
                    owner.referral_id,
                    {"ce_id": update.ce_id},
                )
            )
            continue
        grouped[(owner.hospital_id, owner.referral_id)].append(update)

    checks = {key: check_sequences(grouped.get(key, [])) for key in ours}
    in_intake = {(r.hospital_id, r.referral_id): r for r in db.intake_referrals}
    finals: Counter[str] = Counter()
    unexpected: Counter[str] = Counter()
    repeats_dropped = 0
    for (hospital_id, referral_id), check in checks.items():
        repeats_dropped += check.repeats_dropped
        script = ours[(hospital_id, referral_id)]
        evidence: dict[str, Any] = {"trail": trail(check)}
        if check.updates:
            evidence["case_id"] = check.updates[0].case_id
        if not check.updates:
            stored = in_intake.get((hospital_id, referral_id))
            evidence["intake"] = (
                f"stored, case {stored.case_id}, {stored.outcome}" if stored else "no row"
            )
            problems.append(
                Problem(
                    LOSS,
                    "no update at all",
                    "the hospital never heard back about this submission"
                    + ("" if stored else "; intake never stored it"),
                    hospital_id,
                    referral_id,
                    evidence,
                )
            )
            continue
        if check.missing:
            problems.append(
                Problem(
                    LOSS,
                    "sequence gap",
                    f"sequences {list(check.missing)} never reached the topic "
                    f"(saw {check.sequences})",
                    hospital_id,
                    referral_id,
                    evidence,
                )
            )
        if check.repeated:
            problems.append(
                Problem(
                    DUPLICATE,
                    "sequence repeated under another ce_id",
                    f"sequences {list(check.repeated)} were sent twice as different updates",
                    hospital_id,
                    referral_id,
                    evidence,
                )
            )
        if check.conflicting_ce_ids:
            problems.append(
                Problem(
                    DUPLICATE,
                    "one ce_id, two different updates",
                    f"ce_ids {list(check.conflicting_ce_ids)} carried different content",
                    hospital_id,
                    referral_id,
                    evidence,
                )
            )
        if check.out_of_order:
            problems.append(
                Problem(
                    ORDER,
                    "updates out of sequence order",
                    f"sequences {list(check.out_of_order)} arrived after a higher one "
                    f"(topic order {check.sequences})",
                    hospital_id,
                    referral_id,
                    evidence,
                )
            )
        after = changes_after_terminal(check)
        if after:
            problems.append(
                Problem(
                    DUPLICATE,
                    "status changed after a terminal status",
                    "after the terminal update came "
                    + ", ".join(f"{u.sequence}:{u.status}/{u.business_status}" for u in after),
                    hospital_id,
                    referral_id,
                    evidence,
                )
            )
        else:  # a change after the terminal status is reported above, once
            illegal = check_path(u.status for u in check.by_sequence())
            if illegal:
                problems.append(
                    Problem(
                        ILLEGAL,
                        "illegal status path",
                        "; ".join(illegal),
                        hospital_id,
                        referral_id,
                        evidence,
                    )
                )
        status = final_status(check)
        if status not in TERMINAL:
            problems.append(
                Problem(
                    HARNESS if harness.cut_short else STUCK,
                    "not terminal when the load bound passed"
                    if harness.cut_short
                    else "not terminal",
                    f"last status {status} (sequence {max(check.sequences)})",
                    hospital_id,
                    referral_id,
                    evidence,
                )
            )
            continue
        if status is None:  # None is not terminal: the branch above took it
            raise RuntimeError(f"{hospital_id}/{referral_id}: terminal check let no status through")
        finals[status] += 1
        if script.expected_status and status != script.expected_status:
            unexpected[f"{script.kind}: expected {script.expected_status}, got {status}"] += 1

    problems += _reconcile_outcome(ours, checks, db)
    problems += _closed_after_terminal(checks, db)
    problems += _duplicates_in_databases(ours, db)
    for service, rows in sorted(db.unpublished.items()):
        if rows:
            problems.append(
                Problem(
                    UNDRAINED,
                    "outbox not drained",
                    f"{rows} unpublished outbox rows in {service}",
                    evidence={"service": service, "rows": rows},
                )
            )
    for dead in db.dead_letters:
        problems.append(
            Problem(
                LOSS,
                "record dead-lettered",
                f"{dead.service} gave up on event {dead.event_id} from {dead.topic or '?'}: "
                f"{dead.error or 'no error recorded'}",
                evidence={"service": dead.service, "consumer": dead.consumer, "topic": dead.topic},
            )
        )

    for line, n in sorted(unexpected.items()):
        notes.append(f"{n} ended differently from their script ({line})")
    missing_terminal = [s for s in TERMINAL if not finals.get(s)]
    harness_problems = list(harness.errors)
    if len(submitted) < harness.planned:
        harness_problems.append(f"only {len(submitted)} of {harness.planned} referrals were sent")
    if missing_terminal and submitted and not any(p.kind in PRODUCT_KINDS for p in problems):
        harness_problems.append(
            f"the mix never reached terminal status {', '.join(missing_terminal)}"
        )
    if harness.faults_injected < harness.faults_planned:
        harness_problems.append(
            f"only {harness.faults_injected} of {harness.faults_planned} faults were injected"
        )
    if harness.cut_short and any(p.kind == HARNESS for p in problems):
        harness_problems.append(
            "the load bound passed while referrals were still finishing: those not terminal "
            "prove nothing (raise --timeout, or run on a less busy machine)"
        )
    if not harness.quiescent:
        notes.append("the system did not become quiet within the bound; checks ran anyway")
    for text in harness_problems:
        problems.append(Problem(HARNESS, "harness", text))

    product = [p for p in problems if p.kind in PRODUCT_KINDS]
    if product:
        verdict = FAIL
    elif harness_problems:
        verdict = INCONCLUSIVE
    else:
        verdict = PASS
    # Per kind, how many referrals (or, for problems of no one referral, how many findings).
    by_kind = Counter(
        kind for kind, _ in {(p.kind, p.referral_id or str(i)) for i, p in enumerate(problems)}
    )
    counts: dict[str, Any] = {
        "planned": harness.planned,
        "sent": len(submitted),
        "with_updates": sum(1 for c in checks.values() if c.updates),
        "terminal": sum(finals.values()),
        "terminal_by_status": {s: finals.get(s, 0) for s in TERMINAL},
        "updates_read": sum(len(v) for v in grouped.values()),
        "repeats_dropped": repeats_dropped,
        "faults_planned": harness.faults_planned,
        "faults_injected": harness.faults_injected,
        "lost": by_kind.get(LOSS, 0),
        "duplicated": by_kind.get(DUPLICATE, 0),
        "out_of_order": by_kind.get(ORDER, 0),
        "stuck": by_kind.get(STUCK, 0),
        "undrained": by_kind.get(UNDRAINED, 0),
        "illegal_paths": by_kind.get(ILLEGAL, 0),
        "unexpected_outcomes": sum(unexpected.values()),
    }
    return Verification(verdict, counts, _limit(problems, max_examples), notes)


def _limit(problems: list[Problem], per_what: int) -> list[Problem]:
    """At most `per_what` examples of each (kind, what); the counts keep the totals."""
    kept: list[Problem] = []
    seen: Counter[tuple[str, str]] = Counter()
    dropped: Counter[tuple[str, str]] = Counter()
    for problem in problems:
        key = (problem.kind, problem.what)
        seen[key] += 1
        if seen[key] <= per_what:
            kept.append(problem)
        else:
            dropped[key] += 1
    for (kind, what), n in dropped.items():
        kept.append(Problem(kind, what, f"... and {n} more like this", evidence={"more": n}))
    return kept


def _reconcile_outcome(
    ours: Mapping[tuple[str, str], SentReferral],
    checks: Mapping[tuple[str, str], SequenceCheck],
    db: DatabaseFacts,
) -> list[Problem]:
    problems: list[Problem] = []
    assigned: dict[tuple[str, str], list[OutcomeReferral]] = defaultdict(list)
    for row in db.outcome_referrals:
        assigned[(row.hospital_id, row.referral_id)].append(row)
    rows_by_referral: dict[tuple[str, str], list[OutboxUpdate]] = defaultdict(list)
    for out in db.outcome_updates:
        rows_by_referral[(out.hospital_id, out.referral_id)].append(out)

    for key, check in checks.items():
        if key not in ours:
            continue
        hospital_id, referral_id = key
        on_topic = {u.sequence for u in check.updates}
        top = max(on_topic, default=0)
        for row in assigned.get(key, []):
            if row.sequence > top:
                unpublished = [
                    o.sequence
                    for o in rows_by_referral.get(key, [])
                    if not o.published and o.sequence > top
                ]
                problems.append(
                    Problem(
                        UNDRAINED if unpublished else LOSS,
                        "outcome sent more than the topic holds",
                        f"outcome assigned up to sequence {row.sequence}, the topic has up to {top}"
                        + (f" (unpublished rows {unpublished})" if unpublished else ""),
                        hospital_id,
                        referral_id,
                        {"case_id": row.case_id},
                    )
                )
            elif row.sequence < top:
                problems.append(
                    Problem(
                        DUPLICATE,
                        "topic holds more than outcome sent",
                        f"outcome's last sequence is {row.sequence}, the topic has {top}",
                        hospital_id,
                        referral_id,
                        {"case_id": row.case_id},
                    )
                )
        rows = rows_by_referral.get(key, [])
        sequences = Counter(o.sequence for o in rows)
        twice = sorted(s for s, n in sequences.items() if n > 1)
        if twice:
            problems.append(
                Problem(
                    DUPLICATE,
                    "outbox holds one sequence twice",
                    f"outcome's outbox has sequences {twice} in more than one row",
                    hospital_id,
                    referral_id,
                    {"rows": [o.row_id for o in rows if o.sequence in twice]},
                )
            )
        gone = sorted(o.sequence for o in rows if o.published and o.sequence not in on_topic)
        if gone:
            problems.append(
                Problem(
                    LOSS,
                    "published but not on the topic",
                    f"outbox rows with sequences {gone} are marked published but never arrived",
                    hospital_id,
                    referral_id,
                    {"rows": [o.row_id for o in rows if o.sequence in gone]},
                )
            )
        completed = [o for o in rows if o.status == "completed"]
        if len(completed) > 1:
            problems.append(
                Problem(
                    DUPLICATE,
                    "outcome report twice",
                    f"{len(completed)} completed updates in outcome's outbox "
                    f"(sequences {[o.sequence for o in completed]})",
                    hospital_id,
                    referral_id,
                    {"rows": [o.row_id for o in completed]},
                )
            )
    return problems


def _closed_after_terminal(
    checks: Mapping[tuple[str, str], SequenceCheck], db: DatabaseFacts
) -> list[Problem]:
    """A terminal status means every service closed the case and stopped its tasks: the
    closing event (cancelled, failed, closed, refused at review) reached them all. A case
    still open somewhere is an event that service never handled."""
    finished: dict[str, tuple[str, str, str]] = {}
    for (hospital_id, referral_id), check in checks.items():
        status = final_status(check)
        if status in TERMINAL:
            case_id = next((u.case_id for u in check.by_sequence() if u.case_id), None)
            if case_id:
                finished.setdefault(case_id, (hospital_id, referral_id, str(status)))
    problems: list[Problem] = []
    for service, case_ids in sorted((db.open_cases or {}).items()):
        for case_id in sorted(set(case_ids) & set(finished)):
            hospital_id, referral_id, status = finished[case_id]
            problems.append(
                Problem(
                    LOSS,
                    "case still open after its terminal status",
                    f"{service} still holds case {case_id} open; the hospital was told {status}",
                    hospital_id,
                    referral_id,
                    {"case_id": case_id, "service": service},
                )
            )
    live = sorted({(t.service, t.case_id, t.kind) for t in db.tasks if t.status in LIVE_TASK})
    for service, case_id, kind in live:
        if case_id in finished:
            hospital_id, referral_id, status = finished[case_id]
            problems.append(
                Problem(
                    LOSS,
                    "live task after the terminal status",
                    f"a {kind} task of case {case_id} is still live in {service}; the hospital "
                    f"was told {status}",
                    hospital_id,
                    referral_id,
                    {"case_id": case_id, "service": service},
                )
            )
    return problems


def _duplicates_in_databases(
    ours: Mapping[tuple[str, str], SentReferral], db: DatabaseFacts
) -> list[Problem]:
    problems: list[Problem] = []

    def ours_only(rows: Iterable[Any]) -> list[Any]:
        return [r for r in rows if (r.hospital_id, r.referral_id) in ours]

    intake = ours_only(db.intake_referrals)
    for (hospital_id, referral_id), n in _twice((r.hospital_id, r.referral_id) for r in intake):
        problems.append(
            Problem(
                DUPLICATE,
                "referral twice in intake",
                f"{n} intake rows",
                hospital_id,
                referral_id,
            )
        )
    own_cases = Counter(r.case_id for r in intake if r.outcome != "linked")
    for case_id, n in own_cases.items():
        if n > 1:
            holders = sorted(r.referral_id for r in intake if r.case_id == case_id)
            problems.append(
                Problem(
                    DUPLICATE,
                    "one case for two unlinked referrals",
                    f"case {case_id} holds {holders}",
                    evidence={"case_id": case_id, "referrals": holders},
                )
            )
    ours_case_ids = {r.case_id for r in intake}
    with_referral = {r.case_id for r in db.intake_referrals}
    orphans = sorted(set(db.intake_cases) - with_referral)
    if orphans:
        problems.append(
            Problem(
                DUPLICATE,
                "case without a referral in intake",
                f"{len(orphans)} cases no referral points to (a case created twice?)",
                evidence={"case_ids": orphans[:20]},
            )
        )

    for service, rows in (("referral", db.referral_cases), ("scheduling", db.scheduling_cases)):
        mine = ours_only(rows)
        for (hospital_id, referral_id), n in _twice((r.hospital_id, r.referral_id) for r in mine):
            cases = sorted(
                r.case_id
                for r in mine
                if (r.hospital_id, r.referral_id) == (hospital_id, referral_id)
            )
            problems.append(
                Problem(
                    DUPLICATE,
                    f"two cases for one referral in {service}",
                    f"{n} cases: {cases}",
                    hospital_id,
                    referral_id,
                    {"case_ids": cases},
                )
            )
        ours_case_ids |= {r.case_id for r in mine}

    referral_of = {r.case_id: r for r in db.referral_cases}
    for case_id, n in Counter(db.plans).items():
        if n > 1 and case_id in ours_case_ids:
            row = referral_of.get(case_id)
            problems.append(
                Problem(
                    DUPLICATE,
                    "two plans for one case",
                    f"{n} plans for case {case_id}",
                    row.hospital_id if row else None,
                    row.referral_id if row else None,
                    {"case_id": case_id},
                )
            )
    live = Counter(
        (t.service, t.case_id, t.kind)
        for t in db.tasks
        if t.status in LIVE_TASK and t.case_id in ours_case_ids
    )
    for (service, case_id, kind), n in sorted(live.items()):
        if n > 1:
            row = referral_of.get(case_id)
            problems.append(
                Problem(
                    DUPLICATE,
                    "two live tasks of one kind",
                    f"{n} live {kind} tasks for case {case_id} in {service}",
                    row.hospital_id if row else None,
                    row.referral_id if row else None,
                    {
                        "case_id": case_id,
                        "task_ids": [
                            t.task_id
                            for t in db.tasks
                            if (t.service, t.case_id, t.kind) == (service, case_id, kind)
                        ],
                    },
                )
            )
    # A coordinator's work done twice: two reviews, two visits of one kind, two care-plan
    # tasks completed for one case. Every flow keeps one task per kind and case (a hold
    # suspends and resumes it, a waitlist releases it), so a second one came from an event
    # handled twice.
    done = Counter(
        (t.service, t.case_id, t.kind)
        for t in db.tasks
        if t.status == "done" and t.case_id in ours_case_ids
    )
    for (service, case_id, kind), n in sorted(done.items()):
        if n > 1:
            row = referral_of.get(case_id)
            problems.append(
                Problem(
                    DUPLICATE,
                    "one kind of task done twice",
                    f"{n} {kind} tasks done for case {case_id} in {service}",
                    row.hospital_id if row else None,
                    row.referral_id if row else None,
                    {"case_id": case_id},
                )
            )
    return problems


def _twice(keys: Iterable[tuple[str, str]]) -> list[tuple[tuple[str, str], int]]:
    return sorted((key, n) for key, n in Counter(keys).items() if n > 1)


# -- combining scenarios ------------------------------------------------------------------


def overall(verdicts: Iterable[str]) -> str:
    """FAIL beats INCONCLUSIVE beats PASS; nothing run is INCONCLUSIVE."""
    seen = list(verdicts)
    if not seen:
        return INCONCLUSIVE
    if FAIL in seen:
        return FAIL
    if INCONCLUSIVE in seen:
        return INCONCLUSIVE
    return PASS
