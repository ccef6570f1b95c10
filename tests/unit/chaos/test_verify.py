"""The chaos verdict's rules, on hand-made facts: no servers."""

from __future__ import annotations

from services.tools.chaos.verify import (
    DUPLICATE,
    FAIL,
    HARNESS,
    ILLEGAL,
    INCONCLUSIVE,
    LOSS,
    ORDER,
    PASS,
    STUCK,
    UNDRAINED,
    CaseRow,
    DatabaseFacts,
    DeadLetter,
    HarnessFacts,
    IntakeReferral,
    ObservedUpdate,
    OutboxUpdate,
    OutcomeReferral,
    SentReferral,
    TaskRow,
    changes_after_terminal,
    check_sequences,
    final_status,
    overall,
    verify,
)

H = "police-hospital"
PATHS = {
    "completed": ["received", "accepted", "in-progress", "completed"],
    "cancelled": ["received", "accepted", "cancelled"],
    "failed": ["received", "accepted", "in-progress", "failed"],
    "rejected": ["received", "rejected"],
}


def upd(
    referral: str,
    sequence: int,
    status: str = "in-progress",
    *,
    offset: int | None = None,
    ce_id: str | None = None,
    digest: str = "",
    hospital: str = H,
    partition: int = 0,
) -> ObservedUpdate:
    return ObservedUpdate(
        topic_hospital=hospital,
        referral_id=referral,
        ce_id=ce_id or f"{H}/{referral}/{sequence}",
        sequence=sequence,
        status=status,
        business_status=status,
        case_id=f"case-{referral}",
        partition=partition,
        offset=sequence if offset is None else offset,
        digest=digest or f"{referral}-{sequence}-{status}",
    )


def trail(referral: str, statuses: list[str], *, start_offset: int = 0) -> list[ObservedUpdate]:
    return [
        upd(referral, i, status, offset=start_offset + i)
        for i, status in enumerate(statuses, start=1)
    ]


def consistent_world(
    endings: dict[str, str],
) -> tuple[list[SentReferral], list[ObservedUpdate], DatabaseFacts]:
    """Referrals that ended as given, with databases that agree with the topics."""
    sent, updates, db = [], [], DatabaseFacts()
    offset = 0
    for referral, ending in endings.items():
        sent.append(SentReferral(H, referral, "eligible", ending))
        statuses = PATHS[ending]
        updates += trail(referral, statuses, start_offset=offset)
        offset += 100
        case = f"case-{referral}"
        db.intake_referrals.append(IntakeReferral(H, referral, case, "accepted"))
        db.intake_cases.append(case)
        db.referral_cases.append(CaseRow(case, H, referral))
        db.scheduling_cases.append(CaseRow(case, H, referral))
        db.outcome_referrals.append(OutcomeReferral(H, referral, case, len(statuses)))
        for sequence, status in enumerate(statuses, start=1):
            db.outcome_updates.append(
                OutboxUpdate(len(db.outcome_updates) + 1, H, referral, sequence, status, True)
            )
        db.tasks.append(TaskRow("referral", len(db.tasks) + 1, case, "review", "done"))
    db.unpublished = {"intake": 0, "referral": 0, "scheduling": 0, "outcome": 0}
    db.open_cases = {"intake": [], "referral": [], "scheduling": []}
    return sent, updates, db


ALL_FOUR = {"r1": "completed", "r2": "cancelled", "r3": "failed", "r4": "rejected"}


def kinds(result: object) -> list[str]:
    return [p.kind for p in result.problems]  # type: ignore[attr-defined]


# -- sequences ---------------------------------------------------------------------------


def test_a_clean_trail_is_gap_free_and_in_order() -> None:
    check = check_sequences(trail("r1", PATHS["completed"]))
    assert check.ok
    assert check.sequences == [1, 2, 3, 4]
    assert final_status(check) == "completed"


def test_a_repeat_with_the_same_ce_id_is_dropped_not_counted() -> None:
    updates = [*trail("r1", PATHS["completed"]), upd("r1", 2, "accepted", offset=10)]
    check = check_sequences(updates)
    assert check.ok
    assert check.repeats_dropped == 1
    assert check.sequences == [1, 2, 3, 4]


def test_a_late_repeat_of_an_earlier_sequence_is_not_disorder() -> None:
    # A relay republishing a batch after a crash resends old records after newer ones.
    updates = [*trail("r1", PATHS["completed"]), upd("r1", 1, "received", offset=9)]
    assert check_sequences(updates).ok


def test_a_missing_sequence_is_a_gap() -> None:
    updates = [u for u in trail("r1", PATHS["completed"]) if u.sequence != 2]
    check = check_sequences(updates)
    assert check.missing == (2,)
    assert not check.ok


def test_a_missing_first_sequence_is_a_gap() -> None:
    updates = [u for u in trail("r1", PATHS["completed"]) if u.sequence != 1]
    assert check_sequences(updates).missing == (1,)


def test_one_sequence_under_two_ce_ids_is_a_repeat() -> None:
    updates = [*trail("r1", PATHS["cancelled"]), upd("r1", 3, "cancelled", ce_id="other")]
    assert check_sequences(updates).repeated == (3,)


def test_one_ce_id_with_different_content_is_a_conflict() -> None:
    updates = [*trail("r1", PATHS["cancelled"]), upd("r1", 3, "completed", offset=50)]
    assert check_sequences(updates).conflicting_ce_ids == (f"{H}/r1/3",)


def test_a_higher_sequence_first_seen_before_a_lower_one_is_out_of_order() -> None:
    a, b, c = trail("r1", ["received", "accepted", "rejected"])
    swapped = [a, upd("r1", 3, "rejected", offset=2), upd("r1", 2, "accepted", offset=3)]
    check = check_sequences(swapped)
    assert check.out_of_order == (2,)
    assert check.missing == ()
    assert [b.sequence, c.sequence] == [2, 3]


def test_topic_order_is_by_partition_offset_not_list_order() -> None:
    updates = list(reversed(trail("r1", PATHS["completed"])))
    assert check_sequences(updates).ok


def test_changes_after_terminal_allow_a_repeat_of_the_terminal_status() -> None:
    repeat = [*trail("r1", PATHS["completed"]), upd("r1", 5, "completed")]
    assert changes_after_terminal(check_sequences(repeat)) == []
    changed = [*trail("r1", PATHS["completed"]), upd("r1", 5, "in-progress")]
    assert [u.sequence for u in changes_after_terminal(check_sequences(changed))] == [5]


# -- the whole run ----------------------------------------------------------------------------


def test_a_consistent_run_reaching_every_terminal_status_passes() -> None:
    result = verify(*consistent_world(ALL_FOUR))
    assert result.verdict == PASS, result.problems
    assert result.counts["terminal"] == 4
    assert result.counts["terminal_by_status"] == {
        "completed": 1,
        "cancelled": 1,
        "failed": 1,
        "rejected": 1,
    }


def test_a_referral_without_any_update_is_a_loss_and_says_whether_intake_had_it() -> None:
    sent, updates, db = consistent_world(ALL_FOUR)
    sent.append(SentReferral(H, "r5", "eligible", "completed"))
    result = verify(sent, updates, db)
    assert result.verdict == FAIL
    [lost] = result.problems_of(LOSS)
    assert lost.referral_id == "r5"
    assert lost.evidence["intake"] == "no row"


def test_a_referral_that_never_ends_is_stuck() -> None:
    sent, updates, db = consistent_world(ALL_FOUR)
    updates = [u for u in updates if not (u.referral_id == "r1" and u.sequence == 4)]
    db.outcome_referrals = [
        OutcomeReferral(
            r.hospital_id, r.referral_id, r.case_id, 3 if r.referral_id == "r1" else r.sequence
        )
        for r in db.outcome_referrals
    ]
    db.outcome_updates = [
        o for o in db.outcome_updates if not (o.referral_id == "r1" and o.sequence == 4)
    ]
    result = verify(sent, updates, db)
    assert kinds(result) == [STUCK]
    assert result.counts["stuck"] == 1


def test_a_gap_on_the_topic_is_a_loss_and_disagrees_with_the_outbox() -> None:
    sent, updates, db = consistent_world(ALL_FOUR)
    updates = [u for u in updates if not (u.referral_id == "r1" and u.sequence == 2)]
    result = verify(sent, updates, db)
    assert result.verdict == FAIL
    whats = {p.what for p in result.problems_of(LOSS)}
    assert whats == {"sequence gap", "published but not on the topic"}


def test_repeats_of_one_ce_id_pass_and_are_counted() -> None:
    sent, updates, db = consistent_world(ALL_FOUR)
    updates += [upd("r2", 2, "accepted", offset=9_000), upd("r2", 3, "cancelled", offset=9_001)]
    result = verify(sent, updates, db)
    assert result.verdict == PASS
    assert result.counts["repeats_dropped"] == 2


def test_two_completed_updates_for_one_referral_are_a_duplicate_outcome_report() -> None:
    sent, updates, db = consistent_world(ALL_FOUR)
    updates.append(upd("r1", 5, "completed", offset=9_000))
    db.outcome_referrals = [
        OutcomeReferral(
            r.hospital_id, r.referral_id, r.case_id, 5 if r.referral_id == "r1" else r.sequence
        )
        for r in db.outcome_referrals
    ]
    db.outcome_updates.append(OutboxUpdate(99, H, "r1", 5, "completed", True))
    result = verify(sent, updates, db)
    assert [p.what for p in result.problems] == ["outcome report twice"]
    assert result.verdict == FAIL


def test_outcome_having_sent_more_than_the_topic_holds_is_a_loss() -> None:
    sent, updates, db = consistent_world(ALL_FOUR)
    db.outcome_referrals[0] = OutcomeReferral(H, "r1", "case-r1", 5)
    result = verify(sent, updates, db)
    assert [(p.kind, p.what) for p in result.problems] == [
        (LOSS, "outcome sent more than the topic holds")
    ]


def test_an_unpublished_update_is_an_undrained_outbox_not_a_loss() -> None:
    sent, updates, db = consistent_world(ALL_FOUR)
    updates = [u for u in updates if not (u.referral_id == "r1" and u.sequence == 4)]
    db.outcome_updates = [
        o
        if (o.referral_id, o.sequence) != ("r1", 4)
        else OutboxUpdate(o.row_id, H, "r1", 4, o.status, False)
        for o in db.outcome_updates
    ]
    db.unpublished["outcome"] = 1
    result = verify(sent, updates, db)
    assert sorted(kinds(result)) == [STUCK, UNDRAINED, UNDRAINED]
    assert result.counts["lost"] == 0
    assert result.verdict == FAIL


def test_the_same_sequence_twice_in_the_outbox_is_a_duplicate() -> None:
    sent, updates, db = consistent_world(ALL_FOUR)
    db.outcome_updates.append(OutboxUpdate(99, H, "r4", 2, "rejected", True))
    result = verify(sent, updates, db)
    assert [p.what for p in result.problems] == ["outbox holds one sequence twice"]


def test_duplicates_in_the_service_databases_are_found() -> None:
    sent, updates, db = consistent_world(ALL_FOUR)
    db.referral_cases.append(CaseRow("case-r1-again", H, "r1"))
    db.plans += ["case-r1", "case-r1"]
    db.tasks += [
        TaskRow("scheduling", 50, "case-r1", "pre-discharge-visit", "open"),
        TaskRow("scheduling", 51, "case-r1", "pre-discharge-visit", "suspended"),
        # A done task and a live one of one kind are a normal succession, not a duplicate.
        TaskRow("referral", 52, "case-r2", "care-plan", "done"),
        TaskRow("referral", 53, "case-r2", "care-plan", "open"),
    ]
    db.intake_cases.append("case-orphan")
    result = verify(sent, updates, db)
    whats = sorted(p.what for p in result.problems_of(DUPLICATE))
    assert whats == [
        "case without a referral in intake",
        "two cases for one referral in referral",
        "two live tasks of one kind",
        "two plans for one case",
    ]
    # The live tasks of finished cases are also reported as lost closing events.
    assert {p.what for p in result.problems_of(LOSS)} == {"live task after the terminal status"}
    assert result.verdict == FAIL


def test_a_task_kind_done_twice_for_one_case_is_duplicate_work() -> None:
    sent, updates, db = consistent_world(ALL_FOUR)
    db.tasks.append(TaskRow("referral", 60, "case-r3", "review", "cancelled"))
    assert verify(sent, updates, db).verdict == PASS
    db.tasks.append(TaskRow("referral", 61, "case-r3", "review", "done"))
    result = verify(sent, updates, db)
    [problem] = result.problems
    assert (problem.kind, problem.what, problem.referral_id) == (
        DUPLICATE,
        "one kind of task done twice",
        "r3",
    )


def test_a_case_left_open_after_its_terminal_status_is_a_lost_closing_event() -> None:
    sent, updates, db = consistent_world(ALL_FOUR)
    assert db.open_cases is not None
    db.open_cases["scheduling"].append("case-r2")
    db.tasks.append(TaskRow("scheduling", 70, "case-r2", "pre-discharge-visit", "open"))
    result = verify(sent, updates, db)
    assert [(p.kind, p.what, p.referral_id) for p in result.problems] == [
        (LOSS, "case still open after its terminal status", "r2"),
        (LOSS, "live task after the terminal status", "r2"),
    ]
    assert result.counts["lost"] == 1  # one referral


def test_an_open_case_of_a_referral_still_in_progress_is_fine() -> None:
    sent, updates, db = consistent_world(ALL_FOUR)
    assert db.open_cases is not None
    updates = [u for u in updates if not (u.referral_id == "r1" and u.sequence == 4)]
    db.outcome_referrals = [
        OutcomeReferral(r.hospital_id, r.referral_id, r.case_id, 3) if r.referral_id == "r1" else r
        for r in db.outcome_referrals
    ]
    db.outcome_updates = [
        o for o in db.outcome_updates if not (o.referral_id == "r1" and o.sequence == 4)
    ]
    db.open_cases["referral"].append("case-r1")
    db.tasks.append(TaskRow("scheduling", 71, "case-r1", "post-discharge-visit", "open"))
    assert kinds(verify(sent, updates, db)) == [STUCK]


def test_referrals_linked_to_one_case_are_not_duplicates_but_unlinked_ones_are() -> None:
    sent, updates, db = consistent_world(ALL_FOUR)
    db.intake_referrals.append(IntakeReferral(H, "r5", "case-r1", "linked"))
    sent.append(SentReferral(H, "r5", "eligible", "completed"))
    updates += trail("r5", PATHS["completed"], start_offset=500)
    db.outcome_referrals.append(OutcomeReferral(H, "r5", "case-r1", 4))
    assert verify(sent, updates, db).verdict == PASS
    db.intake_referrals[-1] = IntakeReferral(H, "r5", "case-r1", "accepted")
    result = verify(sent, updates, db)
    assert [p.what for p in result.problems] == ["one case for two unlinked referrals"]


def test_an_update_on_another_hospitals_topic_is_flagged() -> None:
    sent, updates, db = consistent_world(ALL_FOUR)
    updates.append(upd("r1", 4, "completed", hospital="severance", offset=7))
    result = verify(sent, updates, db)
    assert [p.what for p in result.problems] == ["update on another hospital's topic"]


def test_out_of_order_updates_fail_the_run() -> None:
    sent, updates, db = consistent_world(ALL_FOUR)
    updates = [u for u in updates if u.referral_id != "r4"] + [
        upd("r4", 1, "received", offset=300),
        upd("r4", 2, "rejected", offset=302),
        upd("r4", 2, "rejected", offset=303),
    ]
    assert verify(sent, updates, db).verdict == PASS
    updates = [u for u in updates if u.referral_id != "r4"] + [
        upd("r4", 2, "rejected", offset=300),
        upd("r4", 1, "received", offset=301),
    ]
    result = verify(sent, updates, db)
    assert kinds(result) == [ORDER]


def test_an_illegal_status_path_fails_the_run() -> None:
    """The contract's FHIR Task table (contracts/fhir_task.py): rejected after accepted,
    a received → in-progress shortcut, on-hold back to a status it did not leave."""
    for path in (
        ["received", "accepted", "rejected"],
        ["received", "in-progress", "cancelled"],
        ["received", "accepted", "on-hold", "in-progress", "completed"],
    ):
        sent, updates, db = consistent_world(ALL_FOUR)
        updates = [u for u in updates if u.referral_id != "r2"]
        updates += trail("r2", path, start_offset=900)
        db.outcome_referrals = [
            OutcomeReferral(H, "r2", "case-r2", len(path)) if r.referral_id == "r2" else r
            for r in db.outcome_referrals
        ]
        db.outcome_updates = [o for o in db.outcome_updates if o.referral_id != "r2"] + [
            OutboxUpdate(900 + i, H, "r2", i, status, True) for i, status in enumerate(path, 1)
        ]
        result = verify(sent, updates, db)
        assert result.verdict == FAIL, path
        assert kinds(result) == [ILLEGAL], (path, result.problems)
        assert result.counts["illegal_paths"] == 1
        assert result.problems[0].referral_id == "r2"


def test_a_dead_letter_is_reported_as_a_loss() -> None:
    sent, updates, db = consistent_world(ALL_FOUR)
    db.dead_letters.append(
        DeadLetter(
            "referral", "referral", "ev-1", "care.cases", "ObjectNotInPrerequisiteStateError"
        )
    )
    result = verify(sent, updates, db)
    [problem] = result.problems
    assert (problem.kind, problem.what) == (LOSS, "record dead-lettered")
    assert "ObjectNotInPrerequisiteStateError" in problem.detail


def test_other_runs_referrals_on_a_shared_topic_are_ignored() -> None:
    sent, updates, db = consistent_world(ALL_FOUR)
    updates.append(upd("someone-else", 7, "in-progress"))
    db.outcome_referrals.append(OutcomeReferral(H, "someone-else", "case-x", 9))
    db.intake_referrals.append(IntakeReferral(H, "someone-else", "case-x", "accepted"))
    db.intake_cases.append("case-x")
    assert verify(sent, updates, db).verdict == PASS


def test_a_run_missing_a_terminal_status_is_inconclusive() -> None:
    endings = {"r1": "completed", "r2": "cancelled", "r3": "failed"}
    result = verify(*consistent_world(endings))
    assert result.verdict == INCONCLUSIVE
    assert "rejected" in result.problems_of(HARNESS)[0].detail


def test_faults_not_injected_or_referrals_not_sent_make_it_inconclusive() -> None:
    sent, updates, db = consistent_world(ALL_FOUR)
    result = verify(sent, updates, db, HarnessFacts(planned=4, faults_planned=3, faults_injected=2))
    assert result.verdict == INCONCLUSIVE
    result = verify(sent, updates, db, HarnessFacts(planned=10, faults_planned=0))
    assert result.verdict == INCONCLUSIVE
    assert "only 4 of 10" in result.problems_of(HARNESS)[0].detail


def test_referrals_not_terminal_when_a_busy_load_was_cut_short_are_inconclusive() -> None:
    sent, updates, db = consistent_world(ALL_FOUR)
    updates = [u for u in updates if not (u.referral_id == "r1" and u.sequence == 4)]
    db.outcome_referrals = [
        OutcomeReferral(r.hospital_id, r.referral_id, r.case_id, 3) if r.referral_id == "r1" else r
        for r in db.outcome_referrals
    ]
    db.outcome_updates = [
        o for o in db.outcome_updates if not (o.referral_id == "r1" and o.sequence == 4)
    ]
    cut = verify(sent, updates, db, HarnessFacts(planned=4, cut_short=True))
    assert cut.verdict == INCONCLUSIVE
    assert cut.counts["stuck"] == 0
    assert "load bound passed" in cut.problems_of(HARNESS)[-1].detail
    assert verify(sent, updates, db).verdict == FAIL


def test_a_product_failure_wins_over_harness_trouble() -> None:
    sent, updates, db = consistent_world(ALL_FOUR)
    sent.append(SentReferral(H, "r5"))
    result = verify(sent, updates, db, HarnessFacts(planned=5, faults_planned=1))
    assert result.verdict == FAIL


def test_script_divergence_is_a_note_not_a_failure() -> None:
    sent, updates, db = consistent_world(ALL_FOUR)
    sent[0] = SentReferral(H, "r1", "cap_exhausted", "failed")
    result = verify(sent, updates, db)
    assert result.verdict == PASS
    assert result.counts["unexpected_outcomes"] == 1
    assert "expected failed, got completed" in result.notes[0]


def test_examples_are_capped_but_counts_are_not() -> None:
    sent, updates, db = consistent_world(ALL_FOUR)
    sent += [SentReferral(H, f"lost-{i}") for i in range(30)]
    result = verify(sent, updates, db, max_examples=5)
    assert result.counts["lost"] == 30
    losses = result.problems_of(LOSS)
    assert len(losses) == 6
    assert losses[-1].evidence["more"] == 25


def test_overall_verdict() -> None:
    assert overall([PASS, PASS]) == PASS
    assert overall([PASS, INCONCLUSIVE]) == INCONCLUSIVE
    assert overall([INCONCLUSIVE, FAIL, PASS]) == FAIL
    assert overall([]) == INCONCLUSIVE
