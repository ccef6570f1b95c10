"""A case's card: the least of the person a coordinator needs to tell cases apart in
a list (issue 10). Pure: no database.

A queue row, a search hit and the case page show the patient's initials and age
band, never the name, birth date, phone or address; the full details open with a
task and are audited there (queries.case_details). Initials of a Hangul name are
its syllables' leading consonants (김민준 → ㄱㅁㅈ), of a Latin name the words'
first letters (Kim Min-jun → K. M.): about as telling as a name's length, which is
why they need no audit row each time a queue refreshes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from services.lib.policy import age_band, age_on, seoul_date

# Hangul syllables are composed arithmetically (Unicode 3.12): 19 leading consonants,
# each followed by 21 * 28 syllables.
_SYLLABLES = range(0xAC00, 0xD7A4)
_LEADS = "ㄱㄲㄴㄷㄸㄹㅁㅂㅃㅅㅆㅇㅈㅉㅊㅋㅌㅍㅎ"
_PER_LEAD = 21 * 28
_MAX_INITIALS = 4


def initials(name: str | None) -> str | None:
    """The name's initials; None when there is no name (destroyed, or never held)."""
    if not name or not name.strip():
        return None
    words = name.split()
    if all(ord(ch) in _SYLLABLES for ch in "".join(words)):
        leads = [_LEADS[(ord(ch) - _SYLLABLES.start) // _PER_LEAD] for ch in "".join(words)]
        return "".join(leads[:_MAX_INITIALS])
    letters = [w[0].upper() for w in words if w[0].isalpha()]
    return " ".join(f"{c}." for c in letters[:_MAX_INITIALS]) or None


def band_at(birth_date: str | None, submitted_at: str | None) -> str | None:
    """The age band at the referral's submission (the one on internal events), in
    Seoul's calendar; None when the birth date is not held."""
    if not birth_date:
        return None
    try:
        born = date.fromisoformat(birth_date)
        on = seoul_date(datetime.fromisoformat(submitted_at)) if submitted_at else None
    except ValueError:
        return None
    if on is None or on < born:
        return None
    return age_band(age_on(born, on))


@dataclass(frozen=True)
class Card:
    case_id: str
    open: bool
    initials: str | None
    age_band: str | None
    district: str | None
    dong: str | None

    def view(self) -> dict[str, Any]:
        return {
            "case_id": self.case_id,
            "open": self.open,
            "initials": self.initials,
            "age_band": self.age_band,
            "district": self.district,
            "dong": self.dong,
        }


def card(case_id: str, open_: bool, submission: dict[str, Any] | None) -> Card:
    """The card of a case from the submission that opened it (None: nothing held)."""
    sub = submission or {}
    patient: dict[str, Any] = sub.get("patient") or {}
    address: dict[str, Any] = patient.get("address") or {}
    return Card(
        case_id=case_id,
        open=open_,
        initials=initials(patient.get("name")),
        age_band=band_at(patient.get("birth_date"), sub.get("submitted_at")),
        district=address.get("district"),
        dong=address.get("dong"),
    )


def same_person(a: dict[str, Any] | None, b: dict[str, Any] | None) -> bool:
    """Two submissions name the same person: name (spaces and case folded, as intake
    matches patients) and birth date. False when either no longer holds them."""
    first, second = (a or {}).get("patient") or {}, (b or {}).get("patient") or {}
    if not (first.get("name") and first.get("birth_date")):
        return False
    return _folded(first.get("name")) == _folded(second.get("name")) and first.get(
        "birth_date"
    ) == second.get("birth_date")


def _folded(name: Any) -> str:
    return "".join(str(name or "").split()).casefold()
