"""The code stays readable in pieces: no module of `relayer/`, `chains/`, `native/` or `bench/` over 500
lines, no function (its whole `def`, docstring included) over 60 lines, but for declarations
(DECLARATIONS: a function that only declares, such as the metrics' registry).

The modules are parsed, not imported; a module that grows past the bound is split by concern
(as `chains/rpc.py` was into `hexcodec.py` and `methods.py`), a function by helpers.

Solidity files (SOLIDITY_DIRS, subfolders included) have the same 500-line bound: a contract that
grows past it is split into abstract bases and internal libraries, still deployed as one contract
(as MarginSettlement.sol was into VaultRegistry.sol, Positions.sol and LeafProofs.sol).
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("relayer", "chains", "native", "bench")
DECLARATIONS = {("relayer/observability/metrics.py", "__init__")}
"""(module, function) of functions that declare and do nothing else (one metric a statement)."""
SOLIDITY_DIRS = ("chains/contracts", "bench/contracts", "tests/contracts/solidity")
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 60


def long_functions(tree: ast.AST, limit: int) -> list[tuple[str, int, int]]:
    """(name, first line, length in lines) of every function in `tree` longer than `limit`."""
    return [
        (node.name, node.lineno, node.end_lineno - node.lineno + 1)
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno is not None
        and node.end_lineno - node.lineno + 1 > limit
    ]


def modules() -> list[Path]:
    sources = sorted(p for package in PACKAGES for p in (REPO_ROOT / package).rglob("*.py"))
    assert len(sources) > 50, "the packages' modules were not found"
    return sources


def test_no_module_over_500_lines() -> None:
    too_long = [
        f"{path.relative_to(REPO_ROOT)}: {lines} lines"
        for path in modules()
        if (lines := len(path.read_text().splitlines())) > MAX_MODULE_LINES
    ]
    assert not too_long, "\n".join(too_long)


def solidity_files() -> list[Path]:
    sources = sorted(p for folder in SOLIDITY_DIRS for p in (REPO_ROOT / folder).rglob("*.sol"))
    assert len(sources) > 10, "the Solidity sources were not found"
    return sources


def test_no_solidity_file_over_500_lines() -> None:
    too_long = [
        f"{path.relative_to(REPO_ROOT)}: {lines} lines"
        for path in solidity_files()
        if (lines := len(path.read_text().splitlines())) > MAX_MODULE_LINES
    ]
    assert not too_long, "\n".join(too_long)


def test_no_function_over_60_lines() -> None:
    too_long = [
        f"{path.relative_to(REPO_ROOT)}:{line}: {name} is {length} lines"
        for path in modules()
        for name, line, length in long_functions(ast.parse(path.read_text(), str(path)), MAX_FUNCTION_LINES)
        if (str(path.relative_to(REPO_ROOT)), name) not in DECLARATIONS
    ]
    assert not too_long, "\n".join(too_long)


def test_the_check_counts_the_whole_def() -> None:
    body = "\n".join(f"    x{i} = {i}" for i in range(59))
    tree = ast.parse(f'def f():\n    """doc"""\n{body}\n')
    assert long_functions(tree, 61) == []
    assert long_functions(tree, 60) == [("f", 1, 61)]
