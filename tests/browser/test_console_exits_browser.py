"""A lead's day in a real browser (Chromium, headless, Playwright) against the running
system (issue 10): the overdue page counts and lists a task past its deadline, the
case page's exit form cancels the case once its confirmation is ticked, and the page
says so; axe-core finds no serious or critical violation on either page. Takes docs/console-overdue.png and docs/console-exits.png when
CARELINK_SCREENSHOTS=1 (`make screenshots`), else into a temporary folder."""

from __future__ import annotations

import asyncio
import os
import re
import time
from pathlib import Path

import asyncpg
from playwright.async_api import Browser, expect

from services.tools.simulators.hospital_io import publish
from services.tools.simulators.referrals import FakeHospital
from services.tools.stack import SystemInfo
from tests.browser.test_console_accessibility import serious_violations
from tests.browser.test_console_browser import (
    DOCS,
    WAIT_MS,
    browser,  # noqa: F401 (the fixture)
    case_of,
    pytestmark,  # noqa: F401 (Chromium present, e2e, timeout)
    signed_in,
)


async def test_a_lead_sees_overdue_work_and_cancels_a_case_from_its_page(
    browser: Browser,  # noqa: F811
    system_info: SystemInfo,
    intake_db: asyncpg.Connection,
    referral_db: asyncpg.Connection,
    tmp_path: Path,
) -> None:
    shots = DOCS if os.environ.get("CARELINK_SCREENSHOTS") == "1" else tmp_path
    hospital = FakeHospital("police-hospital")
    data = hospital.submission(district="Songpa-gu")
    await publish(system_info.kafka_bootstrap, [hospital.submitted(data)])
    case_id = await case_of(intake_db, data["referral_id"])
    deadline = time.monotonic() + WAIT_MS / 1000
    task_id = None
    while task_id is None:
        task_id = await referral_db.fetchval(
            "SELECT id FROM tasks WHERE case_id = $1 AND kind = 'review'", case_id
        )
        assert task_id is not None or time.monotonic() < deadline, "no review task"
        await asyncio.sleep(0.2)
    # Two days past its deadline, as if nobody had looked.
    await referral_db.execute(
        "UPDATE tasks SET due_at = now() - interval '2 days' WHERE id = $1", task_id
    )

    page = await signed_in(browser, system_info.console, "songpa-lead", "lead-demo")
    await page.get_by_role("link", name="기한 초과 Overdue").click()
    await expect(page).to_have_url(system_info.console + "/overdue")
    row = page.locator(f'tr[data-task="referral/{task_id}"]')
    await expect(row).to_be_visible(timeout=WAIT_MS)
    await expect(row).to_contain_text("1~3일 1-3 days")
    await expect(page.locator('tr[data-kind="review"]')).to_be_visible()
    assert await serious_violations(page) == []
    await page.screenshot(path=str(shots / "console-overdue.png"), full_page=True)

    await row.get_by_role("link", name=re.compile("case-")).click()
    await expect(page).to_have_url(re.compile(r"/cases/case-"))
    form = page.get_by_test_id("cancel-form")
    await expect(page.get_by_test_id("fee-support-form")).to_be_visible()  # a lead's
    assert await serious_violations(page) == []
    await form.get_by_label("사유 Reason").select_option("deceased")
    await form.get_by_label("메모 Note (stays in the centre)").fill("보호자가 알려 옴")
    await form.get_by_role("button", name="사례 취소 Cancel the case").click()
    # The confirmation is required: nothing was sent, the case is still open.
    await expect(page).to_have_url(re.compile(rf"/cases/{case_id}$"))
    assert await intake_db.fetchval("SELECT open FROM cases WHERE case_id = $1", case_id)
    await form.get_by_label("사례를 취소합니다 I confirm: cancel this case").check()
    await page.screenshot(path=str(shots / "console-exits.png"), full_page=True)
    await form.get_by_role("button", name="사례 취소 Cancel the case").click()
    await expect(page).to_have_url(re.compile(r"notice=case-cancelled"))
    await expect(page.get_by_test_id("exit-notice")).to_contain_text("Case cancelled")
    assert not await intake_db.fetchval("SELECT open FROM cases WHERE case_id = $1", case_id)
    # The timeline shows the exit: who, the reason in Korean and English, the note.
    exit_row = page.locator('tr[data-what="exit"]')
    await expect(exit_row).to_have_count(1)
    await expect(exit_row).to_contain_text("사례 취소 Case cancelled")
    await expect(exit_row).to_contain_text("사망 Deceased")
    await expect(exit_row).to_contain_text("보호자가 알려 옴")
    assert await serious_violations(page) == []
