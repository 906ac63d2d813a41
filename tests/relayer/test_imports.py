"""The import rule of DESIGN section 5: imports point down, or sideways into `relayer.epoch` only.

    cli -> devnet -> daemon -> relay -> stages -> storage -> epoch -> foundation; chains, native

Every module of `relayer/`, `chains/` and `native/` is parsed with `ast` and every import it
makes is checked: at module level, inside functions and under `if TYPE_CHECKING:` alike (a
type-only import still ties two packages together). The layers, lowest first:

- foundation (`FOUNDATION`): errors, fault points, logging and metrics, keys, config. Any
  module above may import them; they import each other and nothing above.
- `relayer.epoch`: the domain model every stage shares (claims, snapshots, block leaves,
  aggregates, positions, attestations, epoch states, the stored formats).
- `relayer.storage`: the one store; it stores the model's types.
- the stages (`STAGES`): each a package that imports only itself and what lies below, never
  another stage; what one needs of another's objects it names as a `typing.Protocol`.
- the relay (`relayer.relay` and any other top-level module not named below: the parts the
  relay is made of), the daemon, devnet, and the commands (`relayer.cli` and its modules).

`chains` and `native` know nothing of the daemon: neither imports `relayer`, and `native`
does not import `chains`.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

FOUNDATION = (
    "relayer.errors",
    "relayer.faults",
    "relayer.observability.log",
    "relayer.observability.metrics",
    "relayer.keys",
    "relayer.config",
)
"""Imported from anywhere in the daemon (and importing nothing above them)."""

STAGES = (
    "relayer.scheduling",
    "relayer.proving",
    "relayer.aggregation",
    "relayer.attestation",
    "relayer.submission",
    "relayer.settlement",
    "relayer.pullpath",
    "relayer.observability",
    "relayer.watch",
)
"""One package per stage of the flow (DESIGN section 5); none imports another."""

FOUNDATION_RANK, EPOCH_RANK, STORAGE_RANK, STAGE_RANK, RELAY_RANK = 0, 1, 2, 3, 4
UPPER = (("relayer.daemon", 5), ("relayer.devnet", 6), ("relayer.cli", 7))


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def layer(module: str) -> tuple[int, str]:
    """(rank, unit) of a `relayer` module: an import may go to a lower rank, or within its unit."""
    for name in FOUNDATION:
        if _within(module, name):
            return FOUNDATION_RANK, name
    if _within(module, "relayer.epoch"):
        return EPOCH_RANK, "relayer.epoch"
    if _within(module, "relayer.storage"):
        return STORAGE_RANK, "relayer.storage"
    for name in STAGES:
        if _within(module, name):
            return STAGE_RANK, name
    for name, rank in UPPER:
        if _within(module, name):
            return rank, name
    if module == "relayer":
        return FOUNDATION_RANK, module  # the package's own __init__ (a docstring)
    return RELAY_RANK, module


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import in the file at `path` (see `imports_in`)."""
    return imports_in(path.read_text(), module_name(path), is_package=path.name == "__init__.py")


def imports_in(text: str, module: str, *, is_package: bool = False) -> list[tuple[int, str]]:
    """(line, module) of every import in the source `text` of `module`, wherever it stands;
    `from a import b` gives `a.b` when `a/b` is a module or package of this repository (else
    `a`); relative imports are resolved against `module`'s package."""
    package = module if is_package else module.rpartition(".")[0]
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                as_path = ROOT.joinpath(*sub.split("."))
                is_module = as_path.with_suffix(".py").is_file() or (as_path / "__init__.py").is_file()
                found.append((node.lineno, sub if is_module else base))
    return found


def sources(*packages: str) -> list[Path]:
    return sorted(p for package in packages for p in (ROOT / package).rglob("*.py") if "build" not in p.parts)


def violations() -> list[str]:
    """Every import of relayer/, chains/ and native/ that breaks the rule, as `file:line: why`."""
    found = []
    for path in sources("relayer", "chains", "native"):
        source = module_name(path)
        where = f"{path.relative_to(ROOT)}"
        for line, target in dict.fromkeys(imports(path)):
            top = target.split(".")[0]
            if source.startswith(("chains", "native")):
                if top == "relayer" or (source.startswith("native") and top == "chains"):
                    found.append(f"{where}:{line}: {source} imports {target} (it knows nothing of what is above)")
                continue
            if top in ("bench", "tests"):
                found.append(f"{where}:{line}: {source} imports {target}")
                continue
            if top != "relayer":
                continue
            (rank, unit), (to_rank, to_unit) = layer(source), layer(target)
            if unit == to_unit or to_rank < rank:
                continue
            if to_rank > rank:
                found.append(f"{where}:{line}: {source} imports {target}, a layer above it (upward)")
            elif rank == STAGE_RANK:
                found.append(f"{where}:{line}: stage {unit} imports stage {to_unit} (sideways)")
    return found


def test_every_import_points_down_or_into_the_epoch_model() -> None:
    problems = violations()
    assert not problems, "imports against DESIGN section 5:\n" + "\n".join(problems)


def test_the_checker_sees_function_level_type_only_and_relative_imports() -> None:
    """The parser finds imports wherever they stand, and the layers rank as DESIGN draws them."""
    text = (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from relayer.submission.submitter import Submitter\n"
        "def f():\n    from ..proving import prover\n    import relayer.relay\n"
    )
    found = [target for _line, target in imports_in(text, "relayer.settlement.settler")]
    assert found == ["typing", "relayer.submission.submitter", "relayer.proving.prover", "relayer.relay"]
    assert layer("relayer.settlement.settler") == (STAGE_RANK, "relayer.settlement")
    assert layer("relayer.epoch") == (EPOCH_RANK, "relayer.epoch")
    assert layer("relayer.cli")[0] > layer("relayer.daemon")[0] > layer("relayer.relay")[0] > STAGE_RANK
    assert STAGE_RANK > layer("relayer.storage.store")[0] > EPOCH_RANK > layer("relayer.config")[0]


if __name__ == "__main__":  # pragma: no cover
    print("\n".join(violations()) or "clean")
