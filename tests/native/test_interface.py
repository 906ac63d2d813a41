"""The C library's interface (issue 11, item 2): the built module exports exactly the functions
include/spr.h declares with SPR_API (everything else is hidden), and the binding sees each of
them through cffi."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import native._native
import pytest
from native._native import lib

from native import build_ffi

HEADER = build_ffi.HEADER.read_text()
PUBLIC = build_ffi.public_functions(HEADER)
MODULE = Path(native._native.__file__)


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
        f"leaked: {sorted(exported - set(PUBLIC) - {'PyInit__native'})}, "
        f"not exported: {sorted(set(PUBLIC) - exported)}"
    )


def test_public_functions_are_unique_and_reach_the_binding() -> None:
    assert len(PUBLIC) == len(set(PUBLIC))
    assert all(name.startswith("spr_") for name in PUBLIC)
    missing = [name for name in PUBLIC if not callable(getattr(lib, name, None))]
    assert not missing


def test_a_declaration_without_spr_api_is_rejected() -> None:
    with pytest.raises(ValueError, match="spr_keccak256 is declared without SPR_API"):
        build_ffi.public_functions(HEADER.replace("SPR_API int spr_keccak256(", "int spr_keccak256("))
