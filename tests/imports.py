"""Which modules a module imports, read from the source (ast), for the tests that
check the architecture (no tool or library imports a deployable) and the image
(it holds what the deployables import, and their third-party dependencies).
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOCAL_ROOTS = frozenset({"services", "contracts"})


def module_file(module: str) -> Path | None:
    base = ROOT.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _is_type_checking_block(node: ast.AST) -> bool:
    if not isinstance(node, ast.If):
        return False
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _guards_an_optional_import(node: ast.AST) -> bool:
    """`try: import x / except ImportError:`: x is optional, not a dependency."""
    if not isinstance(node, ast.Try):
        return False
    caught: set[str] = set()
    for handler in node.handlers:
        types = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
        caught |= {t.id for t in types if isinstance(t, ast.Name)}
    return bool(caught & {"ImportError", "ModuleNotFoundError"})


def imports_of(module: str, path: Path) -> set[str]:
    """Absolute names of the modules `path` imports at run time (not type-only or optional)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    pending: list[ast.AST] = [ast.parse(path.read_text(encoding="utf-8"), filename=str(path))]
    while pending:
        node = pending.pop()
        if _is_type_checking_block(node):
            continue
        if _guards_an_optional_import(node):
            assert isinstance(node, ast.Try)
            pending.extend([*node.handlers, *node.orelse, *node.finalbody])
            continue
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{node.module}" if node.module else anchor
            else:
                base = node.module or ""
            found.add(base)
            # `from package import submodule` imports the submodule too.
            found |= {f"{base}.{alias.name}" for alias in node.names}
        pending.extend(ast.iter_child_nodes(node))
    return found


@dataclass
class Closure:
    local: set[str] = field(default_factory=set)  # first-party modules, e.g. services.lib.db
    third_party: set[str] = field(default_factory=set)  # top-level names, e.g. asyncpg


def import_closure(entry_points: list[str]) -> Closure:
    """The local modules, and the top-level third-party names, that running the entry
    points imports (following local imports transitively)."""
    found = Closure()
    pending = list(entry_points)
    while pending:
        module = pending.pop()
        # Importing a.b.c runs a/__init__ and a/b/__init__ first.
        parts = module.split(".")
        for depth in range(1, len(parts) + 1):
            name = ".".join(parts[:depth])
            if name in found.local:
                continue
            root = parts[0]
            if root not in LOCAL_ROOTS:
                if root not in sys.stdlib_module_names and root != "__future__":
                    found.third_party.add(root)
                break
            path = module_file(name)
            if path is None:  # a name imported from a module, or a module not written yet
                break
            found.local.add(name)
            pending.extend(imports_of(name, path))
    return found
