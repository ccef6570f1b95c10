"""The layout shows the architecture, and the imports keep to it (issue 8).

Under `services/`: the deployables (each runnable, never imported by another
process), `lib` (libraries: imported, never run) and `tools` (run by people, never
deployed). Read from the source with `ast`, every import of every module under
`services/` and `contracts/` (type-only imports too: they tie the code just the
same; and `importlib.import_module("…")` with a literal name):

- code outside a deployable imports no deployable (tests may, and are not scanned);
- a deployable imports no other deployable;
- libraries and contracts import no tool.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from services.tools.stack.deployables import CONSOLE, FHIR_GATEWAY, PORTAL, SERVICES

ROOT = Path(__file__).resolve().parents[2]
DEPLOYABLES = (*SERVICES, CONSOLE, FHIR_GATEWAY, PORTAL)
LIBRARIES, TOOLS = "lib", "tools"


@dataclass(frozen=True)
class Import:
    module: str  # the importing module, e.g. services.tools.bench.loop
    target: str  # what it imports, e.g. services.referral.usecases
    line: int

    def __str__(self) -> str:
        return f"{self.module}:{self.line} imports {self.target}"


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_in(path: Path, module: str) -> Iterator[Import]:
    """Every module `path` names in an import, resolved to an absolute name."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(module, alias.name, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{node.module}" if node.module else anchor
            else:
                base = node.module or ""
            yield Import(module, base, node.lineno)
            # `from services import referral` imports the package services.referral.
            for alias in node.names:
                yield Import(module, f"{base}.{alias.name}", node.lineno)
        elif (
            isinstance(node, ast.Call)
            and _called(node.func) in {"import_module", "__import__"}
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            yield Import(module, node.args[0].value, node.lineno)


def _called(func: ast.expr) -> str:
    if isinstance(func, ast.Name):
        return func.id
    return func.attr if isinstance(func, ast.Attribute) else ""


def part_of(module: str) -> str:
    """services.<deployable>… → the deployable; services.lib… → lib; services.tools… →
    tools; contracts… → contracts; anything else (third party, stdlib) → ''."""
    parts = module.split(".")
    if parts[0] == "contracts":
        return "contracts"
    if parts[0] != "services" or len(parts) < 2:
        return "services" if parts == ["services"] else ""
    return parts[1]


def all_imports(root: Path = ROOT) -> list[Import]:
    found: list[Import] = []
    for top in ("services", "contracts"):
        for path in sorted((root / top).rglob("*.py")):
            found += imports_in(path, module_name(path, root))
    return found


@pytest.fixture(scope="module")
def imports() -> list[Import]:
    found = all_imports()
    assert len(found) > 500, "the scan found too little: is it looking at the code?"
    return found


def test_services_holds_only_deployables_libraries_and_tools() -> None:
    packages = {p.name for p in (ROOT / "services").iterdir() if (p / "__init__.py").exists()}
    assert packages == {*DEPLOYABLES, LIBRARIES, TOOLS}
    for name in DEPLOYABLES:
        assert (ROOT / "services" / name / "__main__.py").is_file(), f"{name} is not runnable"
    for name in (LIBRARIES, TOOLS):
        assert not (ROOT / "services" / name / "__main__.py").exists()
    for library in (ROOT / "services" / LIBRARIES).iterdir():
        assert not (library / "__main__.py").exists(), f"a library is run: {library.name}"


def test_nothing_outside_a_deployable_imports_one(imports: list[Import]) -> None:
    wrong = [
        str(i)
        for i in imports
        if part_of(i.module) not in DEPLOYABLES and part_of(i.target) in DEPLOYABLES
    ]
    assert wrong == [], "code outside a deployable imports it:\n" + "\n".join(wrong)


@pytest.mark.parametrize("deployable", DEPLOYABLES)
def test_a_deployable_imports_no_other_deployable(imports: list[Import], deployable: str) -> None:
    wrong = [
        str(i)
        for i in imports
        if part_of(i.module) == deployable
        and part_of(i.target) in DEPLOYABLES
        and part_of(i.target) != deployable
    ]
    assert wrong == [], f"{deployable} imports another deployable:\n" + "\n".join(wrong)


def test_libraries_and_contracts_import_no_tool(imports: list[Import]) -> None:
    wrong = [
        str(i)
        for i in imports
        if part_of(i.module) in {LIBRARIES, "contracts"} and part_of(i.target) == TOOLS
    ]
    assert wrong == [], "a library imports a tool:\n" + "\n".join(wrong)


def test_the_scan_sees_every_way_of_importing(tmp_path: Path) -> None:
    tool = tmp_path / "services" / "tools" / "x"
    tool.mkdir(parents=True)
    (tool / "__init__.py").write_text("from . import y\n", encoding="utf-8")
    (tool / "y.py").write_text(
        "from __future__ import annotations\n"
        "import importlib\n"
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from services.referral.usecases import Coordinator\n"
        "from services import scheduling\n"
        "from ...lib import tasks\n"
        "def later():\n"
        "    import services.intake.queries\n"
        "    return importlib.import_module('services.console.app')\n",
        encoding="utf-8",
    )
    found = all_imports(tmp_path)
    targets = {(i.module, i.target) for i in found}
    y = "services.tools.x.y"
    assert ("services.tools.x", "services.tools.x.y") in targets
    for target in (
        "services.referral.usecases",
        "services.scheduling",
        "services.lib.tasks",
        "services.intake.queries",
        "services.console.app",
    ):
        assert (y, target) in targets, target
    assert {part_of(t) for m, t in targets if m == y} >= {"referral", "console", "lib"}
