"""The coordinators' console in a real browser (Debian's Chromium, headless, driven by
Playwright) against the running system: sign in, watch the queue update by itself,
work a referral from review to a care plan, and see the case move on.

Also takes the README's screenshots: into docs/ when CARELINK_SCREENSHOTS=1 (`make screenshots`),
else into a temporary folder so a test run leaves the working tree clean.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from services.lib.policy import load_findings
from services.lib.runtime.settings import REPO_ROOT
from services.tools.simulators.hospital_io import publish
from services.tools.simulators.referrals import FakeHospital
from services.tools.stack import SystemInfo

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
DOCS = REPO_ROOT / "docs"
WAIT_MS = 45_000

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.timeout(300),
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(),
        reason=f"Debian's Chromium is not installed at {CHROMIUM} "
        "(apt-get install chromium; CI installs it in .ci/run)",
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


async def signed_in(browser: Browser, console: str, username: str, password: str) -> Page:
    context = await browser.new_context(viewport={"width": 1280, "height": 900}, locale="ko-KR")
    page = await context.new_page()
    await page.goto(console + "/")
    await expect(page).to_have_url(re.compile(r"/login\?next=%2F$"))
    await page.get_by_label("아이디 Username").fill(username)
    await page.get_by_label("비밀번호 Password").fill(password)
    await page.get_by_role("button", name="로그인 Sign in").click()
    await expect(page).to_have_url(console + "/")
    return page


async def case_of(intake_db: asyncpg.Connection, referral_id: str) -> str:
    deadline = time.monotonic() + WAIT_MS / 1000
    while True:
        case_id: str | None = await intake_db.fetchval(
            "SELECT case_id FROM referrals WHERE referral_id = $1", referral_id
        )
        if case_id:
            return case_id
        assert time.monotonic() < deadline, f"intake never stored {referral_id}"
        await asyncio.sleep(0.2)


async def complete_visit_by_api(console: str, case_id: str) -> None:
    """The pre-discharge visit, done by a colleague through the API."""
    async with httpx.AsyncClient(base_url=console, timeout=20) as api:
        login = await api.post(
            "/api/login", json={"username": "songpa-lead", "password": "lead-demo"}
        )
        headers = {"Authorization": f"Bearer {login.json()['token']}"}
        deadline = time.monotonic() + WAIT_MS / 1000
        task: dict[str, Any] | None = None
        while task is None:
            queue = await api.get(
                "/api/queue", params={"kind": "pre-discharge-visit"}, headers=headers
            )
            task = next((t for t in queue.json()["tasks"] if t["case_id"] == case_id), None)
            assert task is not None or time.monotonic() < deadline, "no pre-discharge visit task"
            await asyncio.sleep(0.25)
        base = f"/api/tasks/{task['service']}/{task['id']}"
        assert (await api.post(f"{base}/claim", headers=headers)).status_code == 200
        done = await api.post(
            f"{base}/complete",
            json={"reached": True, "precautions_acknowledged": True, "findings": ["fall-risk"]},
            headers=headers,
        )
        assert done.status_code == 200, done.text


async def test_a_coordinator_works_a_referral_in_the_browser(
    browser: Browser, system_info: SystemInfo, intake_db: asyncpg.Connection, tmp_path: Path
) -> None:
    shots = DOCS if os.environ.get("CARELINK_SCREENSHOTS") == "1" else tmp_path
    console = system_info.console
    page = await signed_in(browser, console, "songpa", "songpa-demo")
    await expect(page.get_by_role("heading", name="업무 목록 Queue")).to_be_visible()
    await expect(page.locator("#live-status")).to_have_text("실시간 Live", timeout=10_000)
    await page.evaluate("window.__sameDocument = true")

    # A hospital refers a patient: the queue shows the review without a reload.
    hospital = FakeHospital("police-hospital")
    data = hospital.submission(district="Songpa-gu")
    await publish(system_info.kafka_bootstrap, [hospital.submitted(data)])
    case_id = await case_of(intake_db, data["referral_id"])
    review_row = page.locator(f'tr[data-case="{case_id}"][data-kind="review"]')
    await expect(review_row).to_be_visible(timeout=WAIT_MS)
    assert await page.evaluate("window.__sameDocument === true"), "the page was reloaded"
    await expect(review_row).to_contain_text("대기 Open")
    await page.screenshot(path=str(shots / "console-queue.png"), full_page=True)

    # Open it, claim it.
    await review_row.get_by_role("link", name="검토 Review").click()
    await expect(page.get_by_role("heading", name=re.compile("검토 Review"))).to_be_visible()
    await expect(page.get_by_test_id("patient-name")).to_have_text(data["patient"]["name"])
    await page.get_by_role("button", name="맡기 Claim").click()
    await expect(page.locator('[data-notice="claimed"]')).to_be_visible()
    await expect(page.get_by_test_id("task-status")).to_have_text("처리 중 Claimed")
    await page.screenshot(path=str(shots / "console-task.png"), full_page=True)

    # A colleague trying the same task sees who holds it; another centre does not see it.
    lead = await signed_in(browser, console, "songpa-lead", "lead-demo")
    await lead.goto(page.url)
    await lead.get_by_role("button", name="맡기 Claim").click()
    banner = lead.locator('[data-error="claimed-by-other"]')
    await expect(banner).to_contain_text("Claimed by someone else")
    await expect(lead.get_by_role("alert")).to_be_visible()
    gangnam = await signed_in(browser, console, "gangnam", "gangnam-demo")
    response = await gangnam.goto(page.url)
    assert response is not None
    assert response.status == 404
    await expect(gangnam.get_by_test_id("patient-name")).to_have_count(0)

    # Review: eligible.
    await page.get_by_label("적격 Eligible", exact=True).check()
    await page.get_by_role("button", name="검토 완료 Complete review").click()
    await expect(page.locator('[data-notice="reviewed"]')).to_be_visible()
    await expect(page.get_by_test_id("task-status")).to_have_text("완료 Done")
    viewers = await intake_db.fetch(
        "SELECT viewer, purpose FROM access_audit WHERE case_id = $1", case_id
    )
    assert ("songpa", "task-page") in {(v["viewer"], v["purpose"]) for v in viewers}

    # The pre-discharge visit is done by a colleague; the care plan appears in the queue.
    await complete_visit_by_api(console, case_id)
    await page.goto(console + "/")
    plan_row = page.locator(f'tr[data-case="{case_id}"][data-kind="care-plan"]')
    await expect(plan_row).to_be_visible(timeout=WAIT_MS)
    await plan_row.get_by_role("link").first.click()
    await page.get_by_role("button", name="맡기 Claim").click()
    await expect(page.locator('[data-notice="claimed"]')).to_be_visible()

    # A stay over 14 days breaks a rule: a clear banner, the form keeps what was typed.
    await page.get_by_label(re.compile("단기시설")).fill("20")
    await page.get_by_role("button", name="계획 확정 Set plan").click()
    await expect(page.locator('[data-error="invalid-plan"]')).to_contain_text("14")
    await expect(page.get_by_label(re.compile("단기시설"))).to_have_value("20")

    # More than the annual cap allows: the plan is cut to fit, and the page says so. The
    # home care goes to the second provider listed, not the suggested one.
    await page.get_by_label(re.compile("단기시설")).fill("")
    await page.get_by_label(re.compile("일시재가")).fill("200")
    await page.get_by_label(re.compile("식사지원")).fill("10")
    home_care = page.get_by_label("제공기관 provider (temporary_home_care)")
    await expect(home_care).to_have_value("demo-homecare-southeast")
    await home_care.select_option("demo-songpa-neighbours")
    await page.get_by_role("button", name="계획 확정 Set plan").click()
    await expect(page.locator('[data-notice="partial"]')).to_contain_text("annual cap")
    await expect(page.get_by_test_id("task-status")).to_have_text("완료 Done")
    await expect(page.get_by_role("heading", name="결과 Result")).to_be_visible()

    # The case moves on: services linked (scheduling hears of it on its own time).
    deadline = time.monotonic() + WAIT_MS / 1000
    while await page.get_by_test_id("services-linked").inner_text() != "예 Yes":
        assert time.monotonic() < deadline, "services never shown as linked"
        await asyncio.sleep(0.5)
        await page.reload()
    progress = page.locator("table.case-tasks")
    await expect(progress.locator('tr[data-kind="review"]')).to_have_attribute(
        "data-status", "done"
    )
    await expect(progress.locator('tr[data-kind="pre-discharge-visit"]')).to_have_attribute(
        "data-status", "done"
    )
    await expect(progress.locator('tr[data-kind="care-plan"]')).to_have_attribute(
        "data-status", "done"
    )

    # The delivery task: each line started and ended on the task page.
    await page.goto(console + "/")
    delivery_row = page.locator(f'tr[data-case="{case_id}"][data-kind="delivery"]')
    await expect(delivery_row).to_be_visible(timeout=WAIT_MS)
    await delivery_row.get_by_role("link").first.click()
    await page.get_by_role("button", name="맡기 Claim").click()
    await expect(page.locator('[data-notice="claimed"]')).to_be_visible()
    first = page.locator('form.delivery-line[data-line="1"]')
    await expect(first).to_contain_text("가상 송파 이웃돌봄")
    await page.screenshot(path=str(shots / "console-delivery.png"), full_page=True)
    await first.get_by_role("button", name="시작 기록 Record start").click()
    await expect(page.locator('[data-notice="line-started"]')).to_be_visible()
    first = page.locator('form.delivery-line[data-line="1"]')
    await expect(first).to_have_attribute("data-status", "started")
    # Fewer units than ordered without a reason: refused, with the field named.
    await first.get_by_label("제공 수량 Units delivered").fill("3")
    await first.get_by_role("button", name="종료 기록 Record end").click()
    await expect(page.locator('[data-error="invalid-request"]')).to_contain_text("end_reason")
    first = page.locator('form.delivery-line[data-line="1"]')
    await first.get_by_label("제공 수량 Units delivered").fill("3")
    await first.get_by_label(re.compile("사유 Reason")).select_option("moved-to-facility")
    await first.get_by_role("button", name="종료 기록 Record end").click()
    # The cap cut the meals: home care was the plan's one line, so the delivery is over.
    await expect(page.locator('[data-notice="delivered"]')).to_be_visible()
    await expect(page.get_by_test_id("task-status")).to_have_text("완료 Done")
    await expect(page.get_by_role("heading", name="결과 Result")).to_be_visible()
    await expect(page.locator("table.plan").first).to_contain_text("가상 송파 이웃돌봄")
    line = page.get_by_test_id("plan-lines").locator('tr[data-line="1"]')
    await expect(line).to_contain_text("일부 제공 Partly delivered")
    await expect(line).to_contain_text("가상 송파 이웃돌봄")

    # The hospital discharges the patient: the post-discharge visit, recorded on its page
    # with findings ticked from the vocabulary (labels in Korean and English) and a note
    # that stays in scheduling.
    await publish(system_info.kafka_bootstrap, [hospital.discharged(data["referral_id"])])
    await page.goto(console + "/")
    visit_row = page.locator(f'tr[data-case="{case_id}"][data-kind="post-discharge-visit"]')
    await expect(visit_row).to_be_visible(timeout=WAIT_MS)
    await visit_row.get_by_role("link").first.click()
    await page.get_by_role("button", name="맡기 Claim").click()
    await expect(page.locator('[data-notice="claimed"]')).to_be_visible()
    findings = page.get_by_test_id("findings")
    await expect(findings.get_by_role("checkbox")).to_have_count(len(load_findings().codes))
    await expect(page.get_by_role("textbox", name=re.compile("Findings"))).to_have_count(0)
    await page.get_by_label("돌봄 주의사항을 확인했습니다 Care precautions acknowledged").check()
    await findings.get_by_label("낙상 위험 Fall risk").check()
    await findings.get_by_label("식사 준비 도움 필요 Needs help with meals").check()
    await page.get_by_label(re.compile("메모 Notes")).fill("계단 손잡이 없음, 딸이 주말에 방문")
    await page.get_by_role("button", name="방문·통화 완료 Visit done").click()
    await expect(page.locator('[data-notice="visited"]')).to_be_visible()
    await expect(page.get_by_test_id("task-status")).to_have_text("완료 Done")
    await expect(page.get_by_test_id("result-findings")).to_have_text(
        "낙상 위험 Fall risk; 식사 준비 도움 필요 Needs help with meals"
    )

    # Find the case again by the patient's name and birth date (issue 10): the search
    # form posts, the results show initials only, and lead to the case page.
    await page.goto(console + "/")
    await page.get_by_role("link", name="사례 찾기 Find a case").click()
    await page.get_by_label("이름 Name").fill(data["patient"]["name"])
    await page.get_by_label("생년월일 Birth date").fill(data["patient"]["birth_date"])
    await (
        page.get_by_role("form", name=re.compile("이름과 생년월일"))
        .get_by_role("button", name="찾기 Search")
        .click()
    )
    results = page.get_by_test_id("search-results")
    await expect(results.locator(f'tr[data-case="{case_id}"]')).to_be_visible()
    await expect(page).not_to_have_url(re.compile("birth|name="))  # never in a URL
    await page.screenshot(path=str(shots / "console-search.png"), full_page=True)
    await results.get_by_role("link", name=case_id).click()
    await expect(page).to_have_url(console + f"/cases/{case_id}")

    # The case page: its timeline (tasks, the updates sent with their sequence, the
    # delivery lines) and, once the case closed, the outcome report in Korean.
    timeline = page.get_by_test_id("timeline")
    await expect(timeline.locator('tr[data-what="update"][data-sequence="1"]')).to_contain_text(
        "received"
    )
    await expect(timeline.locator('tr[data-what="line"]').first).to_be_visible()
    report = page.get_by_test_id("outcome-report")
    deadline = time.monotonic() + WAIT_MS / 1000
    while not await page.get_by_test_id("report-total").count():
        assert time.monotonic() < deadline, "the case never closed with its report"
        await asyncio.sleep(0.5)
        await page.reload()
    await expect(report.get_by_role("heading", name=re.compile("돌봄 결과 보고서"))).to_be_visible()
    await expect(report).to_contain_text("가상 송파 이웃돌봄")
    await expect(page.get_by_test_id("case-closed")).to_have_text("예 Yes")
    await page.screenshot(path=str(shots / "console-case.png"), full_page=True)

    # Printed: A4, the report's Korean headings, no navigation, no forms.
    await page.emulate_media(media="print")
    await expect(report.get_by_role("heading", name="돌봄 결과 보고서")).to_be_visible()
    for heading in ("제공한 서비스", "비용", "돌봄 주의사항", "후속 안내"):
        await expect(report.get_by_role("heading", name=heading, exact=True)).to_be_visible()
    await expect(page.locator("header.top")).to_be_hidden()
    await expect(page.locator("p.crumbs")).to_be_hidden()
    await expect(page.locator("form")).to_have_count(await page.locator("form").count())
    for form in await page.locator("form").all():
        await expect(form).to_be_hidden()
    page_size = await page.evaluate(
        """() => [...document.styleSheets].flatMap(s => [...s.cssRules])
                 .filter(r => r.constructor.name === 'CSSPageRule')
                 .map(r => r.style.getPropertyValue('size')).join()"""
    )
    assert page_size.lower() == "a4"
    await page.screenshot(path=str(shots / "console-report-print.png"), full_page=True)
    await page.emulate_media(media="screen")

    # And from the task page back to its case.
    await page.get_by_test_id("timeline").get_by_role("link").first.click()
    await page.get_by_test_id("case-link").click()
    await expect(page).to_have_url(console + f"/cases/{case_id}")
