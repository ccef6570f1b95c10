"""Fake referrals, shaped exactly as a hospital sends them.

Personal values come from Faker's ko_KR locale: clearly fake, but realistic
enough to exercise validation and the privacy tests.
"""

from __future__ import annotations

import json
import random
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from faker import Faker

from contracts import hospital_v1 as hv1
from contracts.cloudevents import Envelope
from contracts.hospital_v1 import ServiceCode

SEOUL_DONGS = {
    "Songpa-gu": ["Jamsil-dong", "Garak-dong", "Munjeong-dong"],
    "Gangnam-gu": ["Yeoksam-dong", "Daechi-dong"],
    "Jongno-gu": ["Hyehwa-dong", "Sajik-dong"],
    "Guro-gu": ["Guro-dong", "Gaebong-dong"],
}


@dataclass(frozen=True)
class HospitalRecord:
    """One Kafka record as a hospital would write it."""

    topic: str
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]


class FakeHospital:
    def __init__(self, hospital_id: str, *, seed: int | None = None) -> None:
        self.hospital_id = hospital_id
        self.faker = Faker("ko_KR")
        self.random = random.Random(seed)
        if seed is not None:
            self.faker.seed_instance(seed)

    def submission(
        self,
        *,
        referral_id: str | None = None,
        age: int = 72,
        district: str = "Songpa-gu",
        consent: bool = True,
        registered_disability: bool = False,
        household_size: int = 1,
        monthly_income: int = 1_200_000,
        services: list[str] | None = None,
        priority: str = "routine",
        submitted_at: datetime | None = None,
        discharge_in_days: int = 5,
        **overrides: Any,
    ) -> dict[str, Any]:
        """A valid `referral.submitted` data object (override anything by keyword)."""
        now = submitted_at or datetime.now(UTC)
        today = now.date()
        birth = _birth_date_for_age(age, today, self.random)
        data: dict[str, Any] = {
            "referral_id": referral_id or f"ref-{uuid.uuid4()}",
            "hospital_id": self.hospital_id,
            "submitted_at": now.isoformat(),
            "social_worker": {
                "name": self.faker.name(),
                "phone": self.faker.phone_number(),
                "email": self.faker.email(),
            },
            "patient": {
                "name": self.faker.name(),
                "birth_date": birth.isoformat(),
                "sex": self.random.choice(["F", "M"]),
                "phone": self.faker.phone_number(),
                "address": {
                    "district": district,
                    "dong": self.random.choice(SEOUL_DONGS.get(district, ["Jung-dong"])),
                    "street": self.faker.street_address(),
                    "detail": f"{self.random.randint(101, 1520)}호",
                },
                "household_size": household_size,
                "monthly_household_income_krw": monthly_income,
                "registered_disability": registered_disability,
                "lives_alone": household_size == 1,
                "has_family_caregiver": False,
                "uses_public_care": False,
            },
            "admission_date": (today - timedelta(days=10)).isoformat(),
            "expected_discharge_date": (today + timedelta(days=discharge_in_days)).isoformat(),
            "mobility": self.random.choice(["independent", "assisted", "wheelchair"]),
            "requested_services": services
            or [ServiceCode.TEMPORARY_HOME_CARE.value, ServiceCode.MEAL_DELIVERY.value],
            "care_precautions": "낙상 위험, 저염식",
            "consent": {"given": consent, "obtained_at": now.isoformat(), "method": "written"},
            "priority": priority,
            "do_not_contact": False,
        }
        data.update(overrides)
        return data

    def record(
        self,
        ce_type: str,
        data: dict[str, Any],
        *,
        key: str | None = None,
        event_id: str | None = None,
    ) -> HospitalRecord:
        """Wrap data as a binary-mode CloudEvent keyed by its referral id."""
        referral_id = key if key is not None else str(data["referral_id"])
        envelope = Envelope.new(
            source=f"hospital/{self.hospital_id}",
            type=ce_type,
            subject=referral_id,
            event_id=event_id,
        )
        return HospitalRecord(
            topic=f"hospital.{self.hospital_id}.referrals",
            key=referral_id.encode(),
            value=json.dumps(data, ensure_ascii=False).encode(),
            headers=envelope.to_headers(),
        )

    def submitted(self, data: dict[str, Any]) -> HospitalRecord:
        return self.record(hv1.SUBMITTED, data)

    def discharged(self, referral_id: str, at: datetime | None = None) -> HospitalRecord:
        return self.record(
            hv1.DISCHARGED,
            {
                "referral_id": referral_id,
                "hospital_id": self.hospital_id,
                "discharged_at": (at or datetime.now(UTC)).isoformat(),
            },
        )

    def cancelled(
        self, referral_id: str, reason_code: str = "cancelled-by-hospital"
    ) -> HospitalRecord:
        return self.record(
            hv1.CANCELLED,
            {
                "referral_id": referral_id,
                "hospital_id": self.hospital_id,
                "cancelled_at": datetime.now(UTC).isoformat(),
                "reason_code": reason_code,
                "reason": "환자 전원",
            },
        )

    def updated(self, referral_id: str, **fields: Any) -> HospitalRecord:
        return self.record(
            hv1.UPDATED,
            {
                "referral_id": referral_id,
                "hospital_id": self.hospital_id,
                "updated_at": datetime.now(UTC).isoformat(),
                **fields,
            },
        )


def _birth_date_for_age(age: int, today: date, rng: random.Random) -> date:
    """A birth date making the person exactly `age` today (birthday already passed)."""
    days_after_birthday = rng.randint(1, 300)
    anchor = today - timedelta(days=days_after_birthday)
    try:
        return anchor.replace(year=anchor.year - age)
    except ValueError:  # 29 February
        return anchor.replace(year=anchor.year - age, day=28)
