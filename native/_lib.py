"""The one importer of the compiled cffi library (``native._native``, built from
``native/src/*.c`` by ``native/build_ffi.py``): every other module reaches ``ffi`` and ``lib``
through this one, so the library's version is checked before anything touches it.

Importing it checks ``spr_version()`` against ``EXPECTED_VERSION`` and raises
``NativeVersionError`` (an ``ImportError``) for a stale build. ``tests/native/test_lib_importer.py``
keeps this module the only importer of ``native._native``.
"""

from __future__ import annotations

from typing import Final

from native._native import ffi, lib

__all__ = ["EXPECTED_VERSION", "NativeVersionError", "check_version", "ffi", "lib"]

EXPECTED_VERSION: Final = 10000
"""The version of spr.h this binding is written for (major * 10000 + minor * 100 + patch, as
``SPR_VERSION``): 1.0.0."""


class NativeVersionError(ImportError):
    """The compiled library (``native._native``) is not the one this binding is written for: a
    stale build, e.g. sources updated without rebuilding. ``found`` and ``expected`` are
    versions as ``SPR_VERSION`` (``found`` is None for a library without ``spr_version``)."""

    found: int | None
    expected: int

    def __init__(self, found: int | None, expected: int) -> None:
        self.found = found
        self.expected = expected
        have = "has no spr_version()" if found is None else f"is version {_version_text(found)}"
        super().__init__(
            f"the native library {have} but the binding expects {_version_text(expected)} "
            f"(same major, minor >= {expected // 100 % 100}): rebuild it with `make setup` "
            "(or `pip install -e .`)"
        )


def _version_text(version: int) -> str:
    return f"{version // 10000}.{version // 100 % 100}.{version % 100}"


def check_version(found: int | None, expected: int = EXPECTED_VERSION) -> None:
    """Raise ``NativeVersionError`` unless a library of version ``found`` (``spr_version()``;
    None when the library has none) serves a binding written for ``expected``: the same major
    version and at least the expected minor (spr.h: minors only add functions, patches change
    no interface)."""
    if found is None or found // 10000 != expected // 10000 or found // 100 % 100 < expected // 100 % 100:
        raise NativeVersionError(found, expected)


def _library_version(library: object) -> int | None:
    """``spr_version()`` of a compiled library, None when it predates the call."""
    version = getattr(library, "spr_version", None)
    return None if version is None else int(version())


check_version(_library_version(lib))
