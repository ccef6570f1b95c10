"""Who a coordinator calls for a visit, and what a do-not-contact case hides (issue 10).

A hospital marks a referral `do_not_contact` when staff must reach the patient
through the hospital's medical social worker (the patient asked, or contact could
harm them). For the visit tasks of such a case the console leads with the social
worker (name and phone first, and a plain instruction) and does not show the
patient's phone at all, on the task page and in the API alike: a number that is
not on the screen cannot be dialled by habit. Other tasks (a review, a care plan)
keep the details as they are: nobody is phoned from them.

Pure: the console's desk calls `for_task` on what intake answered.
"""

from __future__ import annotations

from services.console.schemas import ContactOut, PersonalDetails

VISIT_KINDS = frozenset({"pre-discharge-visit", "post-discharge-visit"})
THROUGH_SOCIAL_WORKER = (
    "연락 금지 사례입니다. 환자에게 직접 연락하지 말고 의료사회복지사를 통해 연락하세요. "
    "Do not contact the patient directly: go through the hospital's social worker."
)


def for_task(
    kind: str, personal: PersonalDetails | None
) -> tuple[PersonalDetails | None, ContactOut | None]:
    """The personal details as this task may show them, and how to make contact (None
    for a task that is not a visit, or a case without personal details). Any referral
    marked do-not-contact makes the whole case so: one person, one wish."""
    if kind not in VISIT_KINDS or personal is None:
        return personal, None
    marked = [r for r in personal.referrals if r.do_not_contact]
    if not marked:
        return personal, ContactOut(via="patient")
    first = marked[0]
    hidden = personal.model_copy(
        update={
            "referrals": [
                r.model_copy(update={"patient": r.patient.model_copy(update={"phone": None})})
                for r in personal.referrals
            ]
        }
    )
    return hidden, ContactOut(
        via="social-worker",
        instruction=THROUGH_SOCIAL_WORKER,
        hospital_id=first.hospital_id,
        referral_id=first.referral_id,
        name=first.social_worker.name,
        phone=first.social_worker.phone,
        email=first.social_worker.email,
    )
