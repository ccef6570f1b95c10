"""Accessibility of the coordinators' console in Chromium (Playwright) against the
running system: axe-core finds no serious or critical violation on the queue, a task
page or a case page, and one task is worked with the keyboard alone: sign in, open the
review from the queue, claim it and complete it with Tab, Enter and Space."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from axe_playwright_python.async_playwright import Axe
from playwright.async_api import Browser, Locator, Page, async_playwright, expect

from services.tools.simulators.hospital_io import publish
from services.tools.simulators.referrals import FakeHospital
from services.tools.stack import SystemInfo
from tests.browser.test_console_browser import ARGS, CHROMIUM, WAIT_MS, case_of

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.timeout(300),
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"no Chromium at {CHROMIUM}"),
]
SERIOUS = ("serious", "critical")
AXE = Axe()


@pytest.fixture
async def page() -> AsyncIterator[Page]:
    async with async_playwright() as playwright:
        browser: Browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=ARGS, headless=True
        )
        try:
            # axe-core is injected into the page: the console's CSP would refuse it.
            context = await browser.new_context(
                viewport={"width": 1280, "height": 900}, locale="ko-KR", bypass_csp=True
            )
            yield await context.new_page()
        finally:
            await browser.close()


async def serious_violations(page: Page) -> list[str]:
    """axe-core's serious and critical violations: rule, help and where."""
    results = await AXE.run(page)
    assert results.response["testEngine"]["name"] == "axe-core"  # it ran, on this page
    violations: list[dict[str, Any]] = results.response["violations"]
    return [
        f"{v['id']} ({v['impact']}): {v['help']} at "
        + ", ".join(str(n["target"]) for n in v["nodes"][:5])
        for v in violations
        if v.get("impact") in SERIOUS
    ]


async def tab_to(page: Page, target: Locator, *, limit: int = 120) -> None:
    """Press Tab until `target` has the focus, as a keyboard user would."""
    for _ in range(limit):
        if await target.evaluate("el => el === document.activeElement"):
            return
        await page.keyboard.press("Tab")
    raise AssertionError(f"Tab never reached {target}")


async def test_the_console_passes_axe_and_works_with_the_keyboard_alone(
    page: Page, system_info: SystemInfo, intake_db: asyncpg.Connection
) -> None:
    console = system_info.console
    hospital = FakeHospital("police-hospital")
    data = hospital.submission(district="Songpa-gu")
    await publish(system_info.kafka_bootstrap, [hospital.submitted(data)])
    case_id = await case_of(intake_db, data["referral_id"])

    # The sign-in page, by keyboard: the username field has the focus.
    await page.goto(console + "/login")
    assert await serious_violations(page) == []
    await page.keyboard.type("songpa")
    await page.keyboard.press("Tab")
    await page.keyboard.type("songpa-demo")
    await page.keyboard.press("Enter")
    await expect(page).to_have_url(console + "/")

    # The queue.
    row = page.locator(f'tr[data-case="{case_id}"][data-kind="review"]')
    await expect(row).to_be_visible(timeout=WAIT_MS)
    assert await serious_violations(page) == []

    # Open the review from the queue, claim it and complete it: Tab, Enter, Space.
    await tab_to(page, row.get_by_role("link", name="검토 Review"))
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("heading", name=re.compile("검토 Review"))).to_be_visible()
    assert await serious_violations(page) == []
    await tab_to(page, page.get_by_role("button", name="맡기 Claim"))
    await page.keyboard.press("Enter")
    await expect(page.locator('[data-notice="claimed"]')).to_be_visible()
    await tab_to(page, page.get_by_label("적격 Eligible", exact=True))
    await page.keyboard.press("Space")
    await expect(page.get_by_label("적격 Eligible", exact=True)).to_be_checked()
    await tab_to(page, page.get_by_role("button", name="검토 완료 Complete review"))
    await page.keyboard.press("Enter")
    await expect(page.locator('[data-notice="reviewed"]')).to_be_visible()
    await expect(page.get_by_test_id("task-status")).to_have_text("완료 Done")
    assert await serious_violations(page) == []

    # The case page.
    await page.goto(f"{console}/cases/{case_id}")
    await expect(page.get_by_role("heading", level=1)).to_be_visible()
    assert await serious_violations(page) == []
