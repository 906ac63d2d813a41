"""The compiled cffi library (``native._native``) has one importer, ``native/_lib.py``, which
checks its version before anything else touches it (DESIGN section 5: "one Python module per
concern over one ``lib`` importer"). Other native modules take ``ffi`` / ``lib`` from
``native._lib``; outside ``native/`` only the tests of the C interface itself (tests/native)
and the benchmarks' raw-C baselines (bench/) may do so; the daemon and chain code go through
the public functions of ``native``."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("native", "relayer", "chains", "bench", "tests")
IMPORTER = "native/_lib.py"
LIB_USERS = ("native/", "tests/native/", "bench/")


def imported_modules(source: str, package: tuple[str, ...]) -> set[str]:
    """Every module ``source`` (a file of ``package``, e.g. ("native",)) imports: absolute
    names; ``from a import b`` counts as ``a`` and ``a.b``; relative imports resolved against
    ``package``; ``importlib.import_module`` / ``__import__`` with a literal name included."""
    tree = ast.parse(source)
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package[: len(package) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", getattr(node.func, "id", None)) in {"import_module", "__import__"}
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            found.add(node.args[0].value)
    return found


def imports_of(path: Path) -> set[str]:
    return imported_modules(path.read_text(), path.relative_to(ROOT).parent.parts)


def python_files() -> list[Path]:
    files = [p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py") if "build" not in p.relative_to(ROOT).parts]
    assert any(p.relative_to(ROOT).as_posix() == IMPORTER for p in files)
    return files


def test_only_the_importer_imports_the_compiled_library() -> None:
    importers = sorted(
        p.relative_to(ROOT).as_posix()
        for p in python_files()
        if any(m == "native._native" or m.startswith("native._native.") for m in imports_of(p))
    )
    assert importers == [IMPORTER], f"native._native imported outside {IMPORTER}: {importers}"


def test_lib_reached_only_from_native_its_tests_and_the_benchmarks() -> None:
    """relayer/ and chains/ call the typed functions of ``native``, never ``lib`` itself."""
    users = sorted(
        rel
        for p in python_files()
        if "native._lib" in imports_of(p) and not (rel := p.relative_to(ROOT).as_posix()).startswith(LIB_USERS)
    )
    assert users == [], f"native._lib (the raw cffi lib) imported from {users}"


def test_the_check_sees_each_import_form() -> None:
    """The scanner is not blind: each way of importing the compiled module is found."""
    forms = [
        "import native._native",
        "from native._native import lib",
        "from native import _native",
        "from ._native import ffi",
        "import importlib; importlib.import_module('native._native')",
    ]
    for form in forms:
        assert "native._native" in imported_modules(form, ("native",)), form
