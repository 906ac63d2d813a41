"""The code stays readable in pieces: no module of `relayer/`, `chains/`, `native/`, `bench/` or
`tests/` over 500 lines, no function of the packages (its whole `def`, docstring included) over 60
lines, but for declarations (DECLARATIONS: a function that only declares, such as the metrics'
registry).

The C of the native library, its fuzz harnesses and memcheck driver (C_DIRS) is held to the same
bounds: no .c / .h file over 500 lines but the generated tables (GENERATED_C, data), no function
over 60 lines from its signature's first line to its closing brace (`c_functions`).

The modules are parsed, not imported; a module that grows past the bound is split by concern
(as `chains/rpc.py` was into `hexcodec.py` and `methods.py`), a function by helpers.

The tests (TESTS, every .py file under tests/) have the same 500-line module bound, but not the
function bound: a test module that grows past it is split by concern, its shared fixtures and
helpers moved into a helper module next to it (as tests/relayer/test_pipeline.py was into
pipeline_source.py, pipeline_destination.py, pipeline_harness.py and two test modules).

Solidity files (SOLIDITY_DIRS, subfolders included) have the same 500-line bound: a contract that
grows past it is split into abstract bases and internal libraries, still deployed as one contract
(as MarginSettlement.sol was into VaultRegistry.sol, Positions.sol and LeafProofs.sol).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("relayer", "chains", "native", "bench")
TESTS = "tests"
DECLARATIONS = {("relayer/observability/metrics.py", "__init__")}
"""(module, function) of functions that declare and do nothing else (one metric a statement)."""
SOLIDITY_DIRS = ("chains/contracts", "bench/contracts", "tests/contracts/solidity")
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 60
C_DIRS = ("native/src", "native/include", "native/fuzz", "native/memcheck")
GENERATED_C = {"native/src/verkle_tables.c"}
"""C files that are generated data (written by native/verkle_tables.py): no bound on their length."""

# What a C brace count must not see, each blanked to spaces (newlines kept, so line numbers hold):
# comments, string and character literals, and preprocessor lines (with their continuations).
_C_NOISE = re.compile(
    r"/\*.*?\*/|//[^\n]*|\"(?:\\.|[^\"\\\n])*\"|'(?:\\.|[^'\\\n])*'|^[ \t]*#(?:\\\n|[^\n])*",
    re.S | re.M,
)
_EXTERN_BLOCK = re.compile(r"\s*extern\s+")  # `extern "C" {` once its string is blanked


def long_functions(tree: ast.AST, limit: int) -> list[tuple[str, int, int]]:
    """(name, first line, length in lines) of every function in `tree` longer than `limit`."""
    return [
        (node.name, node.lineno, node.end_lineno - node.lineno + 1)
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno is not None
        and node.end_lineno - node.lineno + 1 > limit
    ]


def _blank_c(source: str) -> str:
    return _C_NOISE.sub(lambda m: re.sub(r"[^\n]", " ", m.group()), source)


def _function_name(head: str) -> str | None:
    """The name of the function whose signature `head` is (the text before a top-level `{`), or None
    when it is not one (a struct, an initializer, an enum): the identifier before the last
    top-level parenthesised group, which must end the head."""
    head = head.rstrip()
    if not head.endswith(")") or "=" in head:
        return None
    depth = 0
    for i in range(len(head) - 1, -1, -1):
        depth += {")": 1, "(": -1}.get(head[i], 0)
        if depth == 0:
            found = re.search(r"([A-Za-z_]\w*)\s*$", head[:i])
            return found.group(1) if found else None
    return None


def c_functions(source: str) -> list[tuple[str, int, int]]:
    """(name, first line, length in lines) of every function defined in the C `source`: from the
    first line of its signature (return type included) to the line of its matching closing brace.
    Braces are matched with comments, literals and preprocessor lines blanked; an `extern "C"`
    block is looked into."""
    text = _blank_c(source)
    found: list[tuple[str, int, int]] = []
    open_: list[tuple[str | None, int]] = []  # per open brace: (function name or None, first line)
    extern_blocks = 0
    start = 0  # where the current top-level declaration began
    for i, char in enumerate(text):
        top = len(open_) == extern_blocks
        if char == "{" and top and _EXTERN_BLOCK.fullmatch(text[start:i]):
            extern_blocks += 1
            open_.append((None, 0))
            start = i + 1
        elif char == "{":
            head = text[start:i]
            first = text.count("\n", 0, start + len(head) - len(head.lstrip())) + 1
            open_.append((_function_name(head) if top else None, first))
        elif char == "}":
            name, first = open_.pop()
            if name is not None:
                found.append((name, first, text.count("\n", 0, i) + 1 - first + 1))
            if len(open_) < extern_blocks:
                extern_blocks -= 1
            if len(open_) == extern_blocks:
                start = i + 1
        elif char == ";" and top:
            start = i + 1
    assert not open_, "unbalanced braces"
    return found


def c_sources() -> list[Path]:
    sources = sorted(p for d in C_DIRS for p in (REPO_ROOT / d).iterdir() if p.suffix in (".c", ".h"))
    assert len(sources) > 20, "the C sources were not found"
    return sources


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


def modules_of_tests() -> list[Path]:
    sources = sorted((REPO_ROOT / TESTS).rglob("*.py"))
    assert len(sources) > 100, "the test modules were not found"
    return sources


def test_no_test_module_over_500_lines() -> None:
    too_long = [
        f"{path.relative_to(REPO_ROOT)}: {lines} lines"
        for path in modules_of_tests()
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


def test_no_c_file_over_500_lines() -> None:
    too_long = [
        f"{path.relative_to(REPO_ROOT)}: {lines} lines"
        for path in c_sources()
        if (lines := len(path.read_text().splitlines())) > MAX_MODULE_LINES
        and str(path.relative_to(REPO_ROOT)) not in GENERATED_C
    ]
    assert not too_long, "\n".join(too_long)


def test_the_exempt_c_files_are_generated() -> None:
    for name in GENERATED_C:
        assert "GENERATED" in (REPO_ROOT / name).read_text().splitlines()[0], name


def test_no_c_function_over_60_lines() -> None:
    too_long = [
        f"{path.relative_to(REPO_ROOT)}:{line}: {name} is {length} lines"
        for path in c_sources()
        for name, line, length in c_functions(path.read_text())
        if length > MAX_FUNCTION_LINES
    ]
    assert not too_long, "\n".join(too_long)


def test_the_c_check_sees_every_function() -> None:
    """Every function found ends on a `}` alone at column 0 (the house style), and every such line
    but an `extern "C"` block's closes a function found: the finder misses none."""
    total = 0
    for path in c_sources():
        source = path.read_text()
        lines = source.splitlines()
        ends = {line + length - 1 for _, line, length in c_functions(source)}
        closers = {n for n, text in enumerate(lines, 1) if text == "}"}
        assert ends <= closers, path
        assert len(closers - ends) == source.count('extern "C" {'), path
        total += len(ends)
    assert total > 150


def _c_snippet(body_lines: int) -> str:
    """C with what could fool a brace count: braces in comments, literals, macros and initializers,
    a struct, an `extern "C"` block, an attribute, a return type on its own line."""
    body = "\n".join(f"    x += {i};" for i in range(body_lines))
    return f"""/* a comment with a brace {{ and a function f(void) {{ }} */
#include "spr.h"
#define BLOCK {{ 1, 2 }}
#ifdef __cplusplus
extern "C" {{
#endif
struct pair {{
    int a, b;
}};
static const struct pair PAIRS[] = {{{{1, 2}}, {{3, 4}}}};
static int
long_one(int x)
{{
    const char *s = "}} // not a comment {{";
    char c = '{{';
{body}
    return x + s[0] + c;
}}
__attribute__((noinline)) static int g(int (*cb)(int), int y)
{{
    if (y) {{ /* }} */
        return cb(y);
    }}
    return 0;
}}
#ifdef __cplusplus
}}
#endif
"""


def test_the_c_check_counts_signature_to_closing_brace() -> None:
    assert c_functions(_c_snippet(54)) == [("long_one", 11, 61), ("g", 72, 7)]
    assert c_functions(_c_snippet(53)) == [("long_one", 11, 60), ("g", 71, 7)]
    too_long = [name for name, _, length in c_functions(_c_snippet(54)) if length > MAX_FUNCTION_LINES]
    assert too_long == ["long_one"]


_SOL_FUNCTION = re.compile(r"\b(function\s+\w+|constructor|modifier\s+\w+|fallback|receive)\s*\(")


def solidity_functions(source: str) -> list[tuple[str, int, int]]:
    """(name, first line, length in lines) of every function, constructor or modifier with a body
    in the Solidity `source`: from the line of its keyword to the line of its matching closing
    brace, with comments and string literals blanked first (`assembly` blocks are inside the body).
    A declaration without a body (an interface's, an abstract one) ends at `;` and is not listed."""
    text = _blank_c(source)
    found = []
    for match in _SOL_FUNCTION.finditer(text):
        body = re.compile(r"[{;]").search(text, match.end())
        if body is None or body.group() == ";":
            continue
        depth, i = 0, body.start()
        while True:
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            if depth == 0:
                break
            i += 1
        first = text.count("\n", 0, match.start()) + 1
        found.append((match.group(1).split()[-1], first, text.count("\n", 0, i) + 1 - first + 1))
    return found


def test_no_solidity_function_over_60_lines() -> None:
    too_long = [
        f"{path.relative_to(REPO_ROOT)}:{line}: {name} is {length} lines"
        for path in solidity_files()
        for name, line, length in solidity_functions(path.read_text())
        if length > MAX_FUNCTION_LINES
    ]
    assert not too_long, "\n".join(too_long)


def test_the_solidity_check_counts_keyword_to_closing_brace() -> None:
    body = "\n".join(f"        x += {i}; // }} {{" for i in range(57))
    source = (
        "interface I {\n    function g(uint256 a) external returns (uint256);\n}\n"
        'contract C {\n    /* function h() { */\n    string s = "}";\n'
        f"    function f(uint256 x)\n        internal\n        pure\n        returns (uint256)\n    {{\n{body}\n"
        "        assembly { x := add(x, 1) }\n        return x;\n    }\n}\n"
    )
    assert solidity_functions(source) == [("f", 7, 65)]
    assert solidity_functions(source.replace("        return x;\n", "")) == [("f", 7, 64)]


def test_no_document_over_500_lines() -> None:
    documents = sorted([REPO_ROOT / "README.md", *(REPO_ROOT / "docs").glob("*.md")])
    assert len(documents) > 5, "the documents were not found"
    too_long = [
        f"{path.relative_to(REPO_ROOT)}: {lines} lines"
        for path in documents
        if (lines := len(path.read_text().splitlines())) > MAX_MODULE_LINES
    ]
    assert not too_long, "\n".join(too_long)
