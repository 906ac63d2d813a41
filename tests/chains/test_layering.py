"""Imports point down only (DESIGN section 5): chain access knows nothing of the daemon.

Every module under `chains/` is parsed (not imported) and each of its imports, at any depth
(inside functions and `if TYPE_CHECKING:` blocks too), is checked against the packages above it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]

ABOVE = {"chains": ("relayer",), "native": ("relayer", "chains")}
"""Each package, with the packages it must never import."""


def imported_modules(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, dotted module name) of every absolute import in `tree`."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
    return found


@pytest.mark.parametrize("package", sorted(ABOVE))
def test_no_import_points_up(package: str) -> None:
    sources = sorted((REPO_ROOT / package).rglob("*.py"))
    assert sources, f"no modules found under {package}/"
    upward = [
        f"{path.relative_to(REPO_ROOT)}:{line}: imports {module}"
        for path in sources
        for line, module in imported_modules(ast.parse(path.read_text(), str(path)))
        if module.split(".")[0] in ABOVE[package]
    ]
    assert not upward, "\n".join(upward)


def test_the_check_sees_an_upward_import() -> None:
    tree = ast.parse("import os\nfrom relayer.errors import RelayerError\ndef f():\n    import relayer.storage.store\n")
    assert [m for _, m in imported_modules(tree)] == ["os", "relayer.errors", "relayer.storage.store"]
