"""Korean and English labels side by side, for the pages (codes stay codes in the API)."""

from __future__ import annotations

from typing import get_args

from contracts.hospital_v1 import Status
from contracts.reasons import REASONS, codes_for
from contracts.referral import ReviewRefusal

# Shared with the portal; re-exported so the console's templates and pages find them here.
from services.lib.labels import PRIORITIES as PRIORITIES
from services.lib.labels import SERVICES as SERVICES
from services.lib.labels import UNITS as UNITS

KINDS = {
    "review": "검토 Review",
    "care-plan": "돌봄 계획 Care plan",
    "pre-discharge-visit": "퇴원 전 방문 Pre-discharge visit",
    "post-discharge-visit": "퇴원 후 방문 Post-discharge visit",
    "delivery": "서비스 제공 확인 Delivery",
}
STATUSES = {
    "open": "대기 Open",
    "claimed": "처리 중 Claimed",
    "done": "완료 Done",
    "cancelled": "취소 Cancelled",
    "suspended": "보류 On hold",
}
# A plan line's state, and why it ended early.
LINE_STATUSES = {
    "ordered": "발주 Ordered",
    "started": "제공 중 Started",
    "ended": "종료 Ended",
    "cancelled": "취소 Cancelled",
}
LINE_OUTCOMES = {
    "delivered": "제공 완료 Delivered",
    "partly-delivered": "일부 제공 Partly delivered",
    "not-delivered": "미제공 Not delivered",
}
LINE_END_REASONS = {
    "moved-to-facility": "시설 입소 Moved to a facility",
    "refused": "본인 거부 Refused",
    "deceased": "사망 Deceased",
    "provider-could-not-staff": "제공 인력 없음 Provider could not staff",
}
# Reason codes are the hospital contract's: their labels live in its bilingual table.
REVIEW_REFUSALS = {code: REASONS[code].label for code in get_args(ReviewRefusal)}
FEE_SUPPORT = {"full": "전액 지원 District pays", "self-pay": "본인 부담 Self-pay"}
HOLD_REASONS = {code: REASONS[code].label for code in codes_for(Status.ON_HOLD)}
MOBILITY = {
    "independent": "독립 보행 Independent",
    "assisted": "부축 필요 Needs assistance",
    "wheelchair": "휠체어 Wheelchair",
    "bedridden": "와상 Bedridden",
}
CONSENT_METHODS = {
    "written": "서면 Written",
    "verbal": "구두 Verbal",
    "electronic": "전자 Electronic",
}
SEX = {"F": "여 F", "M": "남 M", "X": "기타 X"}

# Banners for the errors a coordinator can meet, by the API's stable error code.
ERRORS = {
    "claimed-by-other": "다른 코디네이터가 처리 중입니다. Claimed by someone else.",
    "lease-expired": "처리 시간이 만료되었습니다. 다시 맡아 주세요. "
    "Your lease expired: claim the task again.",
    "not-claimed": "먼저 이 업무를 맡아 주세요. Claim the task first.",
    "task-closed": "이미 종료된 업무입니다. This task is already closed.",
    "invalid-plan": "돌봄 계획이 규칙에 맞지 않습니다. The plan breaks a rule.",
    "invalid-request": "입력 내용을 확인해 주세요. Please check the form.",
    "forbidden": "권한이 없습니다. You may not do this.",
    "task-error": "지금은 할 수 없습니다. This cannot be done now.",
    "service-unavailable": "지금은 서비스에 연결할 수 없습니다. A service is not available right now.",
    "invalid-state": "지금 상태에서는 기록할 수 없습니다. "
    "This line cannot take that step now (already started or ended, or the case is closed).",
    "policy-incomplete": "해당 연도 정책에 필요한 값이 없습니다. "
    "The year's policy lacks a value this needs; tell the administrator.",
    "case-closed": "이미 종결된 사례입니다. The case is already finished.",
    "care-plan-set": "돌봄 계획이 이미 확정되어 비용 지원을 정정할 수 없습니다. "
    "The care plan is already set: fee support can be corrected only before it.",
}
# The reasons a coordinator may cancel a case with (the contract's `cancelled` codes but
# the hospital's own withdrawal).
CANCEL_REASONS = {
    code: REASONS[code].label
    for code in ("deceased", "transferred", "declined-by-patient", "consent-withdrawn")
}
# The exits on the case page's timeline (services/console/exit_history.py).
EXIT_ACTIONS = {
    "cancel": "사례 취소 Case cancelled",
    "reopen": "방문 재개 Visit reopened",
    "fee-support": "비용 지원 정정 Fee support corrected",
}
NOTICES = {
    "claimed": "업무를 맡았습니다. You hold this task now.",
    "released": "업무를 반납했습니다. The task is back in the queue.",
    "reassigned": "업무를 넘겼습니다. The task was handed over.",
    "reviewed": "검토를 완료했습니다. Review completed.",
    "plan": "돌봄 계획을 확정하고 제공기관에 서비스를 발주했습니다. "
    "Care plan set, services ordered from the providers.",
    "partial": "연간 한도를 넘어 계획의 일부만 확정했습니다. "
    "The plan was over the annual cap: only the part that fits was set.",
    "cap-exhausted": "연간 한도가 소진되어 계획을 세울 수 없습니다. 사례가 종료됩니다. "
    "The annual cap is used up: no plan, the case fails (cap exhausted).",
    "waitlisted": "대기자로 등록했습니다. Waitlisted: the task returns later.",
    "could-not-deliver": "서비스 제공 불가로 종료했습니다. Closed: services could not be delivered.",
    "line-started": "서비스 시작을 기록했습니다. Line started.",
    "line-ended": "서비스 종료를 기록했습니다. Line ended.",
    "delivered": "모든 서비스가 종료되었습니다. 퇴원 후 방문이 끝나면 사례가 종결됩니다. "
    "Every line has ended: the case closes once the post-discharge visit is done.",
    "visited": "방문 결과를 기록했습니다. Visit recorded.",
    "contact-failed": "연락 실패를 기록했습니다. Failed contact attempt recorded.",
    "unreachable": "연락 불가로 보류되었습니다. On hold: the person could not be reached.",
    # A coordinator's exits (issue 10), shown on the case page.
    "case-cancelled": "사례를 취소했습니다. 병원에 취소 사유가 전달됩니다. "
    "Case cancelled: the hospital hears it with the reason.",
    "case-reopened": "방문을 다시 열었습니다. 업무 목록으로 돌아갑니다. "
    "Visit reopened: it is back in the queue.",
    "fee-support-corrected": "비용 지원을 정정했습니다. Fee support corrected.",
}
