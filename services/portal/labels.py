"""The portal's own words, Korean and English side by side: the referral form's
field labels and the validation messages the server and the browser both show.

Shared labels (services, statuses, mobility …) come from services.lib.labels."""

from __future__ import annotations

from typing import Any

# Every field of `carelink.referral.submitted.v1`, by its dotted path (a unit test
# checks that the contract has no field without a label here).
FIELDS = {
    "referral_id": "의뢰 번호 Referral number",
    "hospital_id": "병원 Hospital",
    "submitted_at": "의뢰 시각 Submitted at",
    "social_worker": "의료사회복지사 Medical social worker",
    "social_worker.name": "이름 Name",
    "social_worker.phone": "전화 Phone",
    "social_worker.email": "이메일 Email (선택 optional)",
    "patient": "환자 Patient",
    "patient.name": "이름 Name",
    "patient.birth_date": "생년월일 Date of birth",
    "patient.sex": "성별 Sex",
    "patient.phone": "전화 Phone (선택 optional)",
    "patient.address": "퇴원 후 주소 Address after discharge",
    "patient.address.district": "자치구 District (e.g. Songpa-gu)",
    "patient.address.dong": "동 Dong",
    "patient.address.street": "도로명 주소 Street",
    "patient.address.detail": "상세 주소 Detail (선택 optional)",
    "patient.household_size": "가구원 수 Household size",
    "patient.monthly_household_income_krw": "월 가구 소득 (원) Monthly household income (KRW)",
    "patient.registered_disability": "등록 장애 Registered disability",
    "patient.lives_alone": "독거 Lives alone",
    "patient.has_family_caregiver": "가족 돌봄 가능 Family caregiver available",
    "patient.uses_public_care": "공적 돌봄 이용 중 Uses public care (LTC grade, in-home services)",
    "admission_date": "입원일 Admission date",
    "expected_discharge_date": "퇴원 예정일 Expected discharge date",
    "mobility": "거동 Mobility",
    "requested_services": "요청 서비스 Requested services",
    "care_precautions": "돌봄 유의사항 Care precautions (fall risk, diet, wound care …)",
    "consent": "정보 제공 동의 Consent to share with the district",
    "consent.given": "동의함 Consent given",
    "consent.obtained_at": "동의 일시 Obtained at (KST)",
    "consent.method": "동의 방법 Method",
    "priority": "우선순위 Priority",
    "do_not_contact": "환자 직접 연락 금지 Do not contact the patient (staff call the social worker)",
}

# Value errors the contract's validators raise, by their message.
VALUE_ERRORS = {
    "must not be before admission_date": "입원일보다 앞설 수 없습니다. "
    "Must not be before the admission date.",
}
REQUIRED = "필수 항목입니다. This field is required."


def message(error_type: str, ctx: dict[str, Any] | None = None, msg: str = "") -> str:
    """The bilingual message for a pydantic error of the contract's model."""
    ctx = ctx or {}
    if error_type in ("missing", "string_too_short") and ctx.get("min_length", 1) <= 1:
        return REQUIRED
    if error_type == "string_too_short":
        return f"{ctx['min_length']}자 이상 입력해 주세요. At least {ctx['min_length']} characters."
    if error_type == "string_too_long":
        return (
            f"{ctx['max_length']}자 이하로 입력해 주세요. At most {ctx['max_length']} characters."
        )
    if error_type == "greater_than_equal":
        return f"{ctx['ge']:,} 이상이어야 합니다. Must be at least {ctx['ge']:,}."
    if error_type == "less_than_equal":
        return f"{ctx['le']:,} 이하여야 합니다. Must be at most {ctx['le']:,}."
    if error_type in ("int_parsing", "int_from_float", "int_type"):
        return "정수를 입력해 주세요. Enter a whole number."
    if error_type.startswith(("datetime", "timezone")):
        return "날짜와 시각을 입력해 주세요. Enter a date and a time."
    if error_type.startswith("date"):
        return "날짜를 입력해 주세요 (YYYY-MM-DD). Enter a date (YYYY-MM-DD)."
    if error_type in ("literal_error", "enum"):
        return "목록에서 골라 주세요. Choose one of the options."
    if error_type in ("bool_parsing", "bool_type"):
        return "예 또는 아니오를 골라 주세요. Choose yes or no."
    if error_type == "too_short":
        return "하나 이상 골라 주세요. Choose at least one."
    if error_type == "too_long":
        return f"{ctx.get('max_length')}개까지 고를 수 있습니다. Choose at most {ctx.get('max_length')}."
    if error_type == "string_pattern_mismatch":
        return "형식이 맞지 않습니다. The format is not valid."
    if error_type == "value_error":
        text = msg.removeprefix("Value error, ")
        if "email" in text:
            return "이메일 주소 형식이 아닙니다. Not an email address."
        return VALUE_ERRORS.get(text, "올바르지 않은 값입니다. This value is not valid.")
    return "올바르지 않은 값입니다. This value is not valid."


ACTION_ERRORS = {
    "terminal": "이 의뢰는 이미 종결되었습니다. This referral has ended; nothing more can be sent.",
    "discharged": "퇴원이 이미 기록되었습니다. The discharge is already recorded.",
    "duplicate-id": "이미 사용한 의뢰 번호입니다. This referral number is already used.",
}
NOTICES = {
    "saved": "임시 저장했습니다. Draft saved.",
    "submitted": "의뢰를 보냈습니다. 접수 결과가 곧 표시됩니다. "
    "Referral sent: its first update appears here shortly.",
    "date-changed": "퇴원 예정일 변경을 보냈습니다. New expected discharge date sent.",
    "discharged": "퇴원을 기록해 보냈습니다. Discharge recorded and sent.",
    "cancelled": "의뢰 취소를 보냈습니다. Cancellation sent.",
}
