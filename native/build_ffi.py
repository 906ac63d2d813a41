"""cffi builder (API mode) for the native core: `native._native` from native/src/*.c.

Used by setuptools through ``setup(cffi_modules=["native/build_ffi.py:ffibuilder"])``, so
``pip install -e .`` / ``pip install .`` compile it. The C is built with
``-O3 -Wall -Wextra -Werror -std=c11 -fvisibility=hidden``: the module exports only
``PyInit__native`` and the functions ``include/spr.h`` marks ``SPR_API`` (checked by
tests/native/test_interface.py). The cffi declarations are generated from that header at build
time (``header_cdef``): there is no second copy of it to keep in sync.

``SPR_SANITIZE=1`` builds with ``-fsanitize=address,undefined`` instead (debugging only). To run
the native tests under the sanitizers::

    SPR_SANITIZE=1 .venv/bin/python native/build_ffi.py      # writes native/_native.cpython-*.so
    export PYCRYPTODOME_DISABLE_DEEPBIND=1 ASAN_OPTIONS=detect_leaks=0
    LD_PRELOAD=$(gcc -print-file-name=libasan.so) .venv/bin/python -m pytest tests/native
    rm native/_native.cpython-*.so                           # back to the pip-built abi3 module

(``python native/build_ffi.py`` compiles into native/ directly; its file name takes precedence
over the ``_native.abi3.so`` that pip builds, hence the ``rm``. pycryptodome, the test oracle,
must not dlopen with RTLD_DEEPBIND under ASan.)
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from cffi import FFI

HERE = Path(__file__).resolve().parent
HEADER = HERE / "include" / "spr.h"

_COMMENT = re.compile(r"/\*.*?\*/|//[^\n]*", re.S)
_DECLARED = re.compile(r"\b(spr_\w+)\s*\(")  # a function name where a declaration names it
_DEFINE = re.compile(r"#\s*define\s+(\w+)(\()?\s*(.*?)\s*$")
# an integer constant expression: literals, operators, parentheses and other SPR_ constants
_INTEGER_EXPRESSION = re.compile(r"(?:\s|[()+\-*/%<>|&~]|0[xX][0-9a-fA-F]+[uUlL]*|[0-9]+[uUlL]*|SPR_\w+)+")
_NOT_CONSTANTS = frozenset({"SPR_H", "SPR_API"})  # the include guard and the export macro


def strip_comments(text: str) -> str:
    """C source without its comments (spr.h has no string literals holding comment marks)."""
    return _COMMENT.sub(" ", text)


def public_functions(header: str) -> list[str]:
    """The functions spr.h declares, in order: the public interface. Each must be marked
    ``SPR_API`` (exported from the otherwise hidden library); ValueError if one is not."""
    names = []
    for statement in strip_comments(header).split(";"):
        found = _DECLARED.search(statement)
        if found is None:
            continue  # a typedef, or the end of the header
        lines = statement[: found.start()].splitlines()
        head = " ".join(line for line in lines if not line.lstrip().startswith("#") and "extern" not in line)
        if not " ".join(head.split()).startswith("SPR_API "):
            raise ValueError(f"spr.h: {found.group(1)} is declared without SPR_API")
        names.append(found.group(1))
    return names


def header_cdef(header: str) -> str:
    """cffi's declarations (``FFI.cdef``, which has no preprocessor) generated from spr.h.

    Declarations (typedefs and the SPR_API functions) are copied without comments and without
    ``SPR_API``; each integer ``#define SPR_...`` becomes ``#define SPR_... ...`` (API mode: the
    compiler supplies the value from the real header); the ``extern "C"`` block for C++ and
    every other directive (include guard, #include, the SPR_API definition) are left out.
    ValueError for a function declared without SPR_API, a function-like macro or a ``#define``
    whose value is not an integer constant expression (cdef could not take it)."""
    public_functions(header)  # every function is marked SPR_API
    out: list[str] = []
    cplusplus = 0  # nesting depth inside "#ifdef __cplusplus"
    for line in strip_comments(header).splitlines():
        stripped = line.strip()
        if not stripped.startswith("#"):
            if not cplusplus and stripped:
                out.append(re.sub(r"\bSPR_API\s+", "", line.rstrip()))
            continue
        directive = stripped[1:].split()
        if cplusplus:
            if directive[0].startswith("if"):
                cplusplus += 1
            elif directive[0] == "endif":
                cplusplus -= 1
        elif directive == ["ifdef", "__cplusplus"]:
            cplusplus = 1
        elif (define := _DEFINE.fullmatch(stripped)) is not None:
            name, function_like, value = define.groups()
            if name in _NOT_CONSTANTS:
                continue
            if function_like or not _INTEGER_EXPRESSION.fullmatch(value):
                raise ValueError(f"spr.h: #define {name} is not an integer constant; cffi's cdef cannot take it")
            out.append(f"#define {name} ...")
    return "\n".join(out) + "\n"


def _rel(path: Path, relative: bool) -> str:
    """setuptools wants source paths relative to the project directory (the working directory
    during a pip build); ``FFI.compile`` changes directory, so it needs absolute ones."""
    if not relative:
        return str(path)
    try:
        return os.path.relpath(path)
    except ValueError:  # another drive (Windows)
        return str(path)


CFLAGS = ["-O3", "-Wall", "-Wextra", "-Werror", "-std=c11", "-fvisibility=hidden"]
LDFLAGS: list[str] = []
if os.environ.get("SPR_SANITIZE") == "1":
    CFLAGS = [
        "-O1",
        "-g",
        "-Wall",
        "-Wextra",
        "-Werror",
        "-std=c11",
        "-fvisibility=hidden",
        "-fsanitize=address,undefined",
        "-fno-sanitize-recover=all",
        "-fno-omit-frame-pointer",
    ]
    LDFLAGS = ["-fsanitize=address,undefined"]


def make_builder(relative: bool = True) -> FFI:
    """An FFI builder for ``native._native`` over native/src/*.c and native/include/."""
    builder = FFI()
    builder.cdef(header_cdef(HEADER.read_text()))
    builder.set_source(
        "native._native",
        '#include "spr.h"',
        sources=sorted(_rel(p, relative) for p in (HERE / "src").glob("*.c")),
        include_dirs=[_rel(HERE / "include", relative)],
        depends=sorted(_rel(p, relative) for p in (HERE / "include").glob("*.h")),
        extra_compile_args=CFLAGS,
        extra_link_args=LDFLAGS,
    )
    return builder


ffibuilder = make_builder()

if __name__ == "__main__":
    import shutil
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        built = Path(make_builder(relative=False).compile(tmpdir=tmp, verbose=True))
        shutil.copy2(built, HERE / built.name)
