"""The social workers' portal in a real browser (Debian's Chromium, headless, driven by
Playwright) against the running system: a medical social worker fills in the referral
form (the browser's own check names a missing field, in both languages, before anything
is sent), submits it, coordinators work the case through the console's API (simulated
staff), the social worker records the discharge, and finally sees `completed` and the
services as delivered in the outcome report. axe-core checks every page on the way: no
serious or critical violation.

Also takes the README's screenshots: into docs/ when CARELINK_SCREENSHOTS=1 (`make
screenshots`), else into a temporary folder so a test run leaves the working tree clean.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest
from axe_playwright_python.async_playwright import Axe
from playwright.async_api import Browser, Page, async_playwright, expect

from services.lib.policy import SEOUL_TZ, seoul_date
from services.lib.runtime.settings import REPO_ROOT
from services.portal import labels
from services.tools.simulators.staff import Staff
from services.tools.stack import SystemInfo

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]
DOCS = REPO_ROOT / "docs"
WAIT_S = 60.0

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.timeout(300),
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(), reason=f"Debian's Chromium is not installed at {CHROMIUM}"
    ),
]


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=ARGS, headless=True
        )
        try:
            yield chromium
        finally:
            await chromium.close()


async def accessible(page: Page, what: str) -> None:
    """axe-core on the page as it is: no serious or critical violation."""
    results = await Axe().run(page)
    bad = [
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}"
        for v in results.response["violations"]
        if v["impact"] in ("serious", "critical")
    ]
    assert not bad, f"{what}: {bad}"


async def case_of(intake_db: asyncpg.Connection, referral_id: str) -> str:
    deadline = time.monotonic() + WAIT_S
    while True:
        case_id: str | None = await intake_db.fetchval(
            "SELECT case_id FROM referrals WHERE referral_id = $1", referral_id
        )
        if case_id:
            return case_id
        assert time.monotonic() < deadline, f"intake never stored {referral_id}"
        await asyncio.sleep(0.2)


async def until_step(page: Page, business_status: str) -> None:
    """Reload the referral page until its latest update is this step."""
    deadline = time.monotonic() + WAIT_S
    while True:
        await page.reload()
        step = page.locator("#current-business-status")
        if await step.count() and (await step.inner_text()).strip() == business_status:
            return
        assert time.monotonic() < deadline, f"the portal never showed {business_status}"
        await asyncio.sleep(0.5)


async def fill_referral(page: Page) -> None:
    """The form as a social worker fills it in (fake personal data)."""
    today = seoul_date(datetime.now(UTC))
    await page.fill("#f-social-worker-name", "김민지")
    await page.fill("#f-social-worker-phone", "02-3400-1234")
    await page.fill("#f-social-worker-email", "social.work@example.com")
    await page.fill("#f-patient-name", "박영자")
    await page.fill("#f-patient-birth-date", "1950-03-14")
    await page.select_option("#f-patient-sex", "F")
    await page.fill("#f-patient-address-district", "Songpa-gu")
    await page.fill("#f-patient-address-dong", "Jamsil-dong")
    await page.fill("#f-patient-address-street", "올림픽로 123")
    await page.fill("#f-patient-household-size", "1")
    await page.fill("#f-patient-monthly-household-income-krw", "900000")
    for name, answer in (
        ("registered-disability", "-no"),
        ("lives-alone", ""),
        ("has-family-caregiver", "-no"),
        ("uses-public-care", "-no"),
    ):
        await page.check(f"#f-patient-{name}{answer}")
    await page.fill("#f-admission-date", (today - timedelta(days=9)).isoformat())
    await page.fill("#f-expected-discharge-date", (today + timedelta(days=4)).isoformat())
    await page.select_option("#f-mobility", "assisted")
    await page.get_by_label("일시재가 Temporary home care (30 min)").check()
    await page.get_by_label("식사지원 Meal delivery (meal)").check()
    await page.fill("#f-care-precautions", "낙상 위험, 저염식")
    await page.check("#f-consent-given")
    await page.fill("#f-consent-obtained-at", f"{today.isoformat()}T09:30")


async def test_a_social_worker_refers_and_sees_the_case_completed_with_the_report(
    browser: Browser,
    system_info: SystemInfo,
    intake_db: asyncpg.Connection,
    staff: Staff,
    tmp_path: Path,
) -> None:
    shots = DOCS if os.environ.get("CARELINK_SCREENSHOTS") == "1" else tmp_path
    portal = system_info.portal
    context = await browser.new_context(
        viewport={"width": 1280, "height": 900}, locale="ko-KR", bypass_csp=True
    )
    page = await context.new_page()
    await page.goto(portal + "/")
    await expect(page).to_have_url(re.compile(r"/login\?next=%2F$"))
    await accessible(page, "sign-in")
    await page.get_by_label("아이디 Username").fill("police-sw")
    await page.get_by_label("비밀번호 Password").fill("police-demo")
    await page.get_by_role("button", name="로그인 Sign in").click()
    await expect(page).to_have_url(portal + "/")
    await accessible(page, "referrals")

    await page.get_by_role("link", name="새 의뢰 New referral").click()
    await expect(page).to_have_url(portal + "/referrals/new")
    referral_id = await page.input_value("#f-referral-id")
    await fill_referral(page)
    # Left blank on purpose: the browser names it in both languages, nothing is sent.
    await page.fill("#f-patient-name", "")
    await page.get_by_role("button", name="의뢰 보내기 Submit referral").click()
    await expect(page.locator("#err-f-patient-name")).to_have_text(labels.REQUIRED)
    await expect(page).to_have_url(portal + "/referrals/new")
    await accessible(page, "the form with an error")
    await page.screenshot(path=str(shots / "portal-form.png"), full_page=True)
    await page.fill("#f-patient-name", "박영자")
    await page.get_by_role("button", name="의뢰 보내기 Submit referral").click()
    await expect(page).to_have_url(re.compile(rf"/referrals/{re.escape(referral_id)}\?notice="))
    await expect(page.get_by_role("status")).to_contain_text("Referral sent")

    case_id = await case_of(intake_db, referral_id)
    await until_step(page, "triaged")
    await accessible(page, "the referral page")
    await staff.review(case_id)
    await until_step(page, "pre-discharge-visit-scheduled")
    await staff.visit(case_id, "pre-discharge-visit")
    answer = await staff.plan(case_id, [("temporary_home_care", 4), ("meal_delivery", 5)])
    assert answer["outcome"] == "plan", answer
    await until_step(page, "services-ordered")

    # The patient goes home: the social worker records it (patient.discharged).
    now = datetime.now(UTC).astimezone(SEOUL_TZ)
    await page.fill("#discharged-at", now.strftime("%Y-%m-%dT%H:%M"))
    await page.get_by_role("button", name="퇴원 기록 Record discharge").click()
    await expect(page.get_by_role("status")).to_contain_text("Discharge recorded")
    await until_step(page, "post-discharge-visit-scheduled")
    await staff.visit(case_id, "post-discharge-visit")
    assert await staff.deliver(case_id, "full") is not None
    await until_step(page, "closed")
    await expect(page.locator("#current-status")).to_have_text("완료 Completed")
    await page.screenshot(path=str(shots / "portal-referral.png"), full_page=True)

    await page.get_by_role("link", name="결과 보고서 Outcome report (A4)").click()
    await expect(page.locator("#report-status")).to_have_text("완료 Completed")
    rows = page.locator("#services-delivered tbody tr")
    await expect(rows).to_have_count(2)
    await expect(rows.nth(0)).to_contain_text("일시재가 Temporary home care")
    await expect(rows.nth(0)).to_contain_text("4 / 4")
    await expect(rows.nth(1)).to_contain_text("식사지원 Meal delivery")
    await expect(rows.nth(1)).to_contain_text("5 / 5")
    await accessible(page, "the outcome report")
    await page.screenshot(path=str(shots / "portal-report.png"), full_page=True)
    # Printable on A4: the navigation is left out of the printed page.
    await page.emulate_media(media="print")
    await expect(page.locator("header.top")).to_be_hidden()
    pdf = await page.pdf(format="A4")
    assert pdf.startswith(b"%PDF")
    await context.close()
