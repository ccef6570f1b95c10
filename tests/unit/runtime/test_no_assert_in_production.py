"""No `assert` in production code: `python -O` strips asserts, so a check the code relies
on would silently vanish. Production code says what it checks with an explicit `raise`."""

from __future__ import annotations

import ast
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[3]
PRODUCTION = ("services", "contracts")


def _asserts(path: Path) -> list[int]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    return [node.lineno for node in ast.walk(tree) if isinstance(node, ast.Assert)]


def test_production_code_has_no_assert_statement() -> None:
    files = [p for top in PRODUCTION for p in sorted((REPO_ROOT / top).rglob("*.py"))]
    assert len(files) > 50  # the scan really looked at the code
    found = [f"{path.relative_to(REPO_ROOT)}:{line}" for path in files for line in _asserts(path)]
    assert found == [], "assert in production code (raise an explicit error instead):\n" + (
        "\n".join(found)
    )


def test_the_scan_finds_an_assert(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("def f(x):\n    if x:\n        assert x > 1\n", encoding="utf-8")
    assert _asserts(sample) == [3]
