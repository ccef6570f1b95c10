"""The case page's exit forms (templates/_case_actions.html, issue 10), rendered from
the context the case page gives them: what each role sees, and that each form asks
for its confirmation."""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any

from services.console.pages import TEMPLATES


@dataclass(frozen=True)
class Who:
    is_lead: bool


@dataclass
class Form:
    attrs: dict[str, str]
    # Every element inside the form: (tag, its attributes).
    parts: list[tuple[str, dict[str, str]]] = field(default_factory=list)

    def named(self, tag: str, name: str) -> list[dict[str, str]]:
        return [a for t, a in self.parts if t == tag and a.get("name") == name]


class Forms(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: dict[str, Form] = {}
        self._open: Form | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {k: v or "" for k, v in attrs}
        if tag == "form":
            self._open = Form(found)
            self.forms[found.get("data-testid", "")] = self._open
        elif self._open is not None:
            self._open.parts.append((tag, found))

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._open = None


def render(case: dict[str, Any], *, lead: bool = False) -> dict[str, Form]:
    html = TEMPLATES.env.get_template("_case_actions.html").render(case=case, user=Who(lead))
    parser = Forms()
    parser.feed(html)
    return parser.forms


def visit(status: str, task_id: int = 7) -> dict[str, Any]:
    return {"service": "scheduling", "id": task_id, "kind": "pre-discharge-visit", "status": status}


def test_an_open_case_offers_cancel_with_the_four_reasons_and_a_required_confirmation() -> None:
    forms = render({"case_id": "case-1", "fee_support": "self-pay", "tasks": []})
    form = forms["cancel-form"]
    assert form.attrs["action"] == "/cases/case-1/cancel"
    codes = [a["value"] for t, a in form.parts if t == "option" and a.get("value")]
    assert codes == ["deceased", "transferred", "declined-by-patient", "consent-withdrawn"]
    (confirm,) = form.named("input", "confirm")
    assert "required" in confirm
    # A coordinator who is not a lead gets no fee-support form, and nothing to reopen.
    assert set(forms) == {"cancel-form"}


def test_an_unreachable_visit_can_be_reopened_from_the_case_page() -> None:
    forms = render(
        {"case_id": "case-1", "hold_reason": "unreachable", "tasks": [visit("suspended", 42)]}
    )
    form = forms["reopen-form"]
    assert form.attrs["action"] == "/cases/case-1/reopen"
    assert form.named("input", "task_id")[0]["value"] == "42"
    assert "required" in form.named("input", "confirm")[0]


def test_a_visit_held_for_another_reason_is_not_offered_for_reopening() -> None:
    forms = render({"case_id": "c", "hold_reason": "readmitted", "tasks": [visit("suspended")]})
    assert "reopen-form" not in forms


def test_a_lead_may_correct_fee_support_with_a_required_note() -> None:
    forms = render({"case_id": "case-1", "fee_support": "self-pay"}, lead=True)
    form = forms["fee-support-form"]
    selected = [a["value"] for t, a in form.parts if t == "option" and "selected" in a]
    assert selected == ["full"]
    assert "required" in form.named("textarea", "note")[0]


def test_a_finished_case_offers_no_exit() -> None:
    forms = render({"case_id": "case-1", "closed": True, "tasks": [visit("suspended")]}, lead=True)
    assert forms == {}
