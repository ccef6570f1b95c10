"""services/console/exit_history and the case page's timeline: the exits taken on a
case, merged from intake, scheduling and referral, shown with who, when, the reason
in Korean and English and the note (issue 10)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.console.exit_history import exit_history
from services.console.schemas import CaseFacts, CaseOut
from services.console.timeline import timeline

T0 = datetime(2026, 12, 2, 1, 0, tzinfo=UTC)


def test_the_three_services_exits_merge_oldest_first() -> None:
    reopens = [
        {
            "task_id": 7,
            "kind": "post-discharge-visit",
            "reason_code": "unreachable",
            "note": "새 번호 new number",
            "actor": "songpa",
            "at": (T0 + timedelta(hours=1)).isoformat(),
        }
    ]
    corrections = [
        {
            "previous": "full",
            "fee_support": "self-pay",
            "note": "소득 확인",
            "actor": "lead",
            "at": T0,
        }
    ]
    cancels = [
        {
            "action": "cancel",
            "reason_code": "deceased",
            "note": None,
            "actor": "songpa2",
            "at": T0 + timedelta(hours=2),
        }
    ]

    exits = exit_history(cancels, reopens, corrections)

    assert [e.action for e in exits] == ["fee-support", "reopen", "cancel"]
    assert [e.service for e in exits] == ["referral", "scheduling", "intake"]
    assert [e.actor for e in exits] == ["lead", "songpa", "songpa2"]
    assert exits[0].previous == "full"
    assert exits[0].fee_support == "self-pay"
    assert exits[1].task_id == 7
    assert exits[1].at == T0 + timedelta(hours=1)
    assert exits[1].note == "새 번호 new number"
    assert exits[2].note is None


def test_a_service_that_does_not_know_the_case_adds_no_exit() -> None:
    assert exit_history(None, None, None) == []
    # A fee-support note destroyed with the personal data is emptied: no note shown.
    erased = [{"previous": "full", "fee_support": "self-pay", "note": "", "actor": "l", "at": T0}]
    assert exit_history(None, [], erased)[0].note is None


def test_the_timeline_shows_each_exit_with_its_reason_in_korean_and_english() -> None:
    exits = exit_history(
        [
            {
                "action": "cancel",
                "reason_code": "transferred",
                "note": "요양병원",
                "actor": "a",
                "at": T0,
            }
        ],
        [
            {
                "task_id": 3,
                "kind": "pre-discharge-visit",
                "reason_code": "unreachable",
                "note": None,
                "actor": "b",
                "at": T0 - timedelta(days=1),
            }
        ],
        [{"previous": "self-pay", "fee_support": "full", "note": "x", "actor": "c", "at": T0}],
    )
    case = CaseOut(
        case_id="case-1",
        card=None,
        facts=CaseFacts(case_id="case-1"),
        tasks=[],
        updates=[],
        exits=exits,
    )

    rows = [e for e in timeline(case) if e.what == "exit"]

    assert [r.actor for r in rows] == ["b", "a", "c"]
    reopened, cancelled, corrected = rows
    assert reopened.label == "방문 재개 Visit reopened (퇴원 전 방문 Pre-discharge visit)"
    assert reopened.detail == "연락 불가 Unreachable"
    assert reopened.link == "/tasks/scheduling/3"
    assert cancelled.label == "사례 취소 Case cancelled"
    assert cancelled.detail == "전원 Transferred"
    assert cancelled.note == "요양병원"
    assert corrected.detail == "본인 부담 Self-pay → 전액 지원 District pays"
