"""A small driver for end-to-end scenarios: one hospital's referral, its updates
and the coordinators working it, over the real broker and databases."""

from __future__ import annotations

from typing import Any

from services.tools.simulators.hospital_io import Update, UpdatesReader, publish
from services.tools.simulators.referrals import FakeHospital, HospitalRecord
from services.tools.simulators.staff import Staff
from tests.e2e.feeds import assert_feed_legal


class Referral:
    def __init__(
        self, reader: UpdatesReader, hospital: FakeHospital, staff: Staff, **submission: Any
    ) -> None:
        self.reader = reader
        self.hospital = hospital
        self.staff = staff
        self.data = hospital.submission(**submission)
        self.referral_id: str = self.data["referral_id"]
        self.case_id = ""

    @property
    def updates(self) -> list[Update]:
        return self.reader.by_referral[self.referral_id]

    def trail(self) -> list[tuple[str, str]]:
        return [(u.data["status"], u.data["business_status"]) for u in self.updates]

    async def send(self, *records: HospitalRecord) -> None:
        await publish(self.reader.bootstrap, list(records))

    async def submit(self, *, expect: str = "triaged") -> None:
        await self.send(self.hospital.submitted(self.data))
        await self.until(expect)
        self.case_id = self.updates[0].data["case_id"]

    async def until(self, business_status: str, *, count: int = 1, timeout: float = 30) -> Update:
        """Wait for the `count`-th update with this business status; return the last one."""

        def reached(seen: dict[str, list[Update]]) -> bool:
            hits = [
                u for u in seen[self.referral_id] if u.data["business_status"] == business_status
            ]
            return len(hits) >= count

        await self.reader.wait_for(reached, timeout=timeout)
        return [u for u in self.updates if u.data["business_status"] == business_status][-1]

    async def to_services_ordered(self, lines: list[tuple[str, int]] | None = None) -> None:
        await self.staff.review(self.case_id)
        await self.until("pre-discharge-visit-scheduled")
        await self.staff.visit(self.case_id, "pre-discharge-visit")
        await self.staff.plan(self.case_id, lines)
        await self.until("services-ordered")

    async def deliver(self, how: str = "full") -> None:
        """Every line of the plan recorded as delivered (`full`, `partial`, `none`)."""
        await self.staff.deliver(self.case_id, how)
        await self.until("could-not-deliver" if how == "none" else "services-delivered")

    def assert_feed_legal(self) -> None:
        """Gap-free, and every move legal in the contract's FHIR Task table."""
        assert_feed_legal(self.updates)
