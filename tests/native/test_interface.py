"""The C library's interface (issue 11, item 2): the built module exports exactly the functions
include/spr.h declares with SPR_API (everything else is hidden), the cffi declarations generated
from that header give the binding each of them and every constant, and importing the binding
checks the library's version (spr_version)."""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import native
from native import build_ffi
from native._lib import lib

HEADER = build_ffi.HEADER.read_text()
PUBLIC = build_ffi.public_functions(HEADER)
MODULE = Path(str(importlib.util.find_spec("native._native").origin))  # type: ignore[union-attr]


def exported_symbols(path: Path) -> set[str]:
    """The dynamic symbols `path` defines (nm -D --defined-only), without the toolchain's own
    (_init, _fini, __bss_start, _edata, _end: names starting with an underscore)."""
    nm = shutil.which("nm")
    if nm is None:
        pytest.fail("nm is not installed (Debian: binutils, which the C build needs anyway)")
    out = subprocess.run([nm, "-D", "--defined-only", str(path)], capture_output=True, text=True, check=True)
    names = {line.split()[-1] for line in out.stdout.splitlines() if line.strip()}
    return {name for name in names if not name.startswith("_")}


def test_module_exports_exactly_the_public_functions() -> None:
    """A function without SPR_API in spr.h (an internal helper, a vk_ / fe_ routine, a table)
    is a leak: the module exports the public functions and its Python entry point, nothing else."""
    exported = exported_symbols(MODULE)
    assert exported - {"PyInit__native"} == set(PUBLIC), (
        f"leaked: {sorted(exported - set(PUBLIC) - {'PyInit__native'})}, not exported: {sorted(set(PUBLIC) - exported)}"
    )


def test_public_functions_are_unique_and_reach_the_binding() -> None:
    assert len(PUBLIC) == len(set(PUBLIC))
    assert all(name.startswith("spr_") for name in PUBLIC)
    missing = [name for name in PUBLIC if not callable(getattr(lib, name, None))]
    assert not missing


def test_cdef_is_generated_from_the_header() -> None:
    """Every function and integer constant of spr.h reaches cffi, declared as in the header."""
    cdef = build_ffi.header_cdef(HEADER)
    assert "SPR_API" not in cdef and "extern" not in cdef and "/*" not in cdef
    squeeze = " ".join  # whitespace-insensitive comparison of declarations
    header = squeeze(build_ffi.strip_comments(HEADER).replace("SPR_API ", "").split())
    for name in PUBLIC:
        declaration = re.search(rf"^[^;#\n]*\b{name}\([^;]*;", cdef, re.M)
        assert declaration is not None, name
        assert squeeze(declaration.group(0).split()) in header, name
    constants = re.findall(r"^#define (SPR_\w+) ", build_ffi.strip_comments(HEADER), re.M)
    constants = [name for name in constants if name != "SPR_API"]
    assert re.findall(r"^#define (\w+) \.\.\.$", cdef, re.M) == constants
    assert all(isinstance(getattr(lib, name), int) for name in constants)
    assert {"SPR_OK", "SPR_ERR_ARG", "SPR_ERR_VERKLE_NOMEM", "SPR_VERSION"} <= set(constants)


@pytest.mark.parametrize(
    "line",
    ['#define SPR_NAME "text"', "#define SPR_TWICE(x) ((x) * 2)", "#define SPR_SIZE sizeof(int)"],
)
def test_cdef_generation_rejects_what_cdef_cannot_take(line: str) -> None:
    with pytest.raises(ValueError, match="is not an integer constant"):
        build_ffi.header_cdef(HEADER.replace("#define SPR_HASH_LEN 32", line))


def test_a_declaration_without_spr_api_is_rejected() -> None:
    with pytest.raises(ValueError, match="spr_keccak256 is declared without SPR_API"):
        build_ffi.public_functions(HEADER.replace("SPR_API int spr_keccak256(", "int spr_keccak256("))


def test_library_version_is_what_the_binding_expects() -> None:
    version = lib.spr_version()
    assert version == lib.SPR_VERSION
    assert version == lib.SPR_VERSION_MAJOR * 10000 + lib.SPR_VERSION_MINOR * 100 + lib.SPR_VERSION_PATCH
    # the binding in this tree is kept at its library's major.minor
    assert version // 100 == native.EXPECTED_VERSION // 100
    native.check_version(version)


@pytest.mark.parametrize(
    ("found", "expected", "shown"),
    [
        (20000, 10000, "is version 2.0.0 but the binding expects 1.0.0"),  # another major
        (10000, 20000, "is version 1.0.0 but the binding expects 2.0.0"),
        (10000, 10100, "is version 1.0.0 but the binding expects 1.1.0"),  # library older than binding
        (None, 10000, "has no spr_version() but the binding expects 1.0.0"),  # built before versioning
    ],
)
def test_an_incompatible_library_is_an_import_error(found: int | None, expected: int, shown: str) -> None:
    with pytest.raises(ImportError) as info:
        native.check_version(found, expected)
    assert isinstance(info.value, native.NativeVersionError)
    assert (info.value.found, info.value.expected) == (found, expected)
    assert shown in str(info.value) and "make setup" in str(info.value)


@pytest.mark.parametrize(("found", "expected"), [(10000, 10000), (10100, 10000), (10003, 10000), (10001, 10002)])
def test_a_compatible_library_passes(found: int, expected: int) -> None:
    native.check_version(found, expected)  # newer minor (added functions) or another patch


@pytest.mark.parametrize("library", ["lib = SimpleNamespace(spr_version=lambda: 20000)", "lib = SimpleNamespace()"])
def test_import_fails_on_a_stale_library(library: str) -> None:
    """Importing the binding over a compiled module of another version (stood in for by a fake
    native._native) raises NativeVersionError before any other use of the library."""
    script = (
        "import sys, types\n"
        "from types import SimpleNamespace\n"
        "fake = types.ModuleType('native._native')\n"
        "fake.ffi = None\n"
        f"fake.{library}\n"
        "sys.modules['native._native'] = fake\n"
        "try:\n"
        "    import native\n"
        "except ImportError as e:\n"
        "    print(type(e).__name__, e)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=MODULE.parents[1]
    )
    assert out.stdout.startswith("NativeVersionError the native library"), out.stdout + out.stderr
    assert "make setup" in out.stdout
