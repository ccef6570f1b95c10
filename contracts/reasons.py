"""Every reason code of the hospital contract v1, bilingual, in one table.

The outcome service writes an update's `reason` and `reason_ko` from it (an
automatic rule may give a more precise English `reason`; the Korean text is the
code's), and the coordinators' console shows the short labels. It lives in
`contracts/` because the codes are part of the public contract and because the
console and outcome must not import each other.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from contracts.hospital_v1 import Status


@dataclass(frozen=True)
class Reason:
    code: str
    status: Status  # the status this code explains
    en: str  # an update's `reason`
    ko: str  # an update's `reason_ko`
    label_en: str  # short, for people's screens
    label_ko: str

    @property
    def label(self) -> str:
        """Korean and English side by side, as the console shows labels."""
        return f"{self.label_ko} {self.label_en}"


_R, _H, _C, _F = Status.REJECTED, Status.ON_HOLD, Status.CANCELLED, Status.FAILED

_TABLE = (
    # rejected, by the automatic rules
    Reason(
        "missing-consent",
        _R,
        "no consent to share the referral with the district",
        "구청과 의뢰 정보를 공유하는 데 대한 동의가 없습니다.",
        "No consent",
        "동의 없음",
    ),
    Reason(
        "ineligible-age",
        _R,
        "the patient does not meet the age rule (50 or older, or a registered disability from 6)",
        "연령 기준(50세 이상, 또는 6세 이상 등록 장애인)에 해당하지 않습니다.",
        "Age rule not met",
        "연령 기준 미충족",
    ),
    Reason(
        "outside-service-area",
        _R,
        "the patient's address is outside the districts carelink serves",
        "환자의 주소지가 서비스 지역 밖입니다.",
        "Outside the service area",
        "서비스 지역 외",
    ),
    Reason(
        "invalid-referral",
        _R,
        "the record does not follow the hospital contract v1",
        "기록이 병원 연계 규격 v1에 맞지 않습니다.",
        "Invalid referral",
        "규격 오류",
    ),
    Reason(
        "conflicting-duplicate",
        _R,
        "this referral_id was already used for a different submission, or its referral is"
        " finished: a new referral needs a new referral_id",
        "이 의뢰 번호(referral_id)는 이미 다른 의뢰에 쓰였거나 종결된 의뢰입니다."
        " 새 의뢰에는 새 의뢰 번호를 써 주세요.",
        "Referral id already used",
        "중복된 의뢰 번호",
    ),
    Reason(
        "unknown-hospital",
        _R,
        "hospital_id is not the hospital this topic belongs to",
        "hospital_id가 이 토픽의 병원과 다릅니다.",
        "Unknown hospital",
        "병원 불일치",
    ),
    # rejected, by the coordinator's review
    Reason(
        "can-manage-alone",
        _R,
        "the review found the patient can manage daily life alone",
        "검토 결과 혼자서 일상생활이 가능합니다.",
        "Can manage alone",
        "혼자 생활 가능",
    ),
    Reason(
        "family-caregiver-available",
        _R,
        "the review found a family caregiver is available",
        "검토 결과 돌봄을 맡을 가족이 있습니다.",
        "Family caregiver available",
        "가족 돌봄 가능",
    ),
    Reason(
        "covered-by-public-care",
        _R,
        "the patient is already covered by an equivalent public care service",
        "이미 같은 종류의 공공 돌봄 서비스를 이용하고 있습니다.",
        "Covered by public care",
        "공공 돌봄 이용 중",
    ),
    # on-hold
    Reason(
        "discharge-postponed",
        _H,
        "the expected discharge moved beyond the planning horizon",
        "퇴원 예정일이 계획할 수 있는 기간 밖으로 미뤄졌습니다.",
        "Discharge postponed",
        "퇴원 연기",
    ),
    Reason(
        "readmitted",
        _H,
        "the patient was readmitted; the post-discharge visit waits for the new discharge",
        "환자가 재입원하여 퇴원 후 방문은 다음 퇴원까지 기다립니다.",
        "Readmitted",
        "재입원",
    ),
    Reason(
        "unreachable",
        _H,
        "the patient could not be reached after repeated attempts",
        "여러 차례 연락했으나 환자와 연락이 닿지 않았습니다.",
        "Unreachable",
        "연락 불가",
    ),
    Reason(
        "waitlisted",
        _H,
        "no provider can take the care plan now; it will be planned again",
        "지금은 돌봄 계획을 맡을 제공기관이 없어 나중에 다시 계획합니다.",
        "Waitlisted",
        "대기",
    ),
    # cancelled
    Reason(
        "cancelled-by-hospital",
        _C,
        "the hospital withdrew the referral",
        "병원이 의뢰를 철회했습니다.",
        "Cancelled by the hospital",
        "병원 철회",
    ),
    Reason(
        "consent-withdrawn",
        _C,
        "the patient withdrew consent to share the referral",
        "환자가 정보 공유 동의를 철회했습니다.",
        "Consent withdrawn",
        "동의 철회",
    ),
    Reason(
        "declined-by-patient",
        _C,
        "the patient declined the service",
        "환자가 서비스를 거부했습니다.",
        "Declined by the patient",
        "본인 거부",
    ),
    Reason(
        "deceased",
        _C,
        "the patient died",
        "환자가 사망했습니다.",
        "Deceased",
        "사망",
    ),
    Reason(
        "transferred",
        _C,
        "the patient was transferred to another institution",
        "환자가 다른 기관으로 옮겼습니다.",
        "Transferred",
        "전원",
    ),
    # failed
    Reason(
        "could-not-deliver",
        _F,
        "the planned services could not be delivered",
        "계획한 서비스를 제공할 수 없었습니다.",
        "Could not deliver",
        "제공 불가",
    ),
    Reason(
        "cap-exhausted",
        _F,
        "the person's annual cap of publicly paid services is used up",
        "공공 지원 서비스의 연간 한도를 모두 사용했습니다.",
        "Annual cap used up",
        "연간 한도 소진",
    ),
)

REASONS: Mapping[str, Reason] = {reason.code: reason for reason in _TABLE}
if len(REASONS) != len(_TABLE):
    raise ValueError("a reason code is listed twice")


def codes_for(status: Status) -> tuple[str, ...]:
    """The contract's reason codes of one status, in the contract's order."""
    return tuple(reason.code for reason in _TABLE if reason.status == status)


def reason(code: str) -> Reason:
    """The row of a contract reason code; KeyError for a code the contract lacks."""
    return REASONS[code]
