"""The documentation matches the code: every link in README.md and docs/*.md leads to a file (and
heading) that exists, every repository path they name exists, and every step of the tour in
docs/architecture.md names functions that its file defines."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
TOP = r"(?:relayer|chains|native|config|systemd|docs|tests|bench)"
BUILT = ("chains/contracts/build",)  # made by `make setup`, not tracked


def _tracked() -> set[str]:
    out = subprocess.run(["git", "-C", str(ROOT), "ls-files"], capture_output=True, text=True, check=True).stdout
    return set(out.split())


TRACKED = _tracked()


def _exists(path: str) -> bool:
    path = path.rstrip("/")
    return path in TRACKED or any(t.startswith(path + "/") for t in TRACKED) or path.startswith(BUILT)


def _anchors(markdown: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to dashes."""
    return {
        re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in re.findall(r"^#+ (.*)$", markdown, re.M)
    }


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_links_and_paths_exist(doc: Path) -> None:
    text = doc.read_text()
    missing = []
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+://", target):
            continue
        path, _, anchor = target.partition("#")
        dest = (doc.parent / path).resolve() if path else doc
        relative = str(dest.relative_to(ROOT)) if dest.is_relative_to(ROOT) else "../outside"
        if path and not _exists(relative):
            missing.append(f"link {target}")
        elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest.read_text()):
            missing.append(f"anchor {target}")
    for path in re.findall(rf"(?<![\w/.\-]){TOP}/[\w.\-/@]*[\w/]", text):  # @: systemd templates
        if not _exists(path):
            missing.append(f"path {path}")
    missing += [f"path outside the repository {p}" for p in re.findall(r"(?<![\w.])\.\./[\w.\-/]+", text)]
    assert not missing, f"{doc.name}: " + ", ".join(sorted(set(missing)))


def test_the_architecture_tour_names_functions_its_files_define() -> None:
    """Rows `| step | what | `file` | `function`, ... |` of docs/architecture.md."""
    rows = re.findall(r"^\| (\d+) \| .* \| `([^`]+)` \| (.*) \|$", (ROOT / "docs/architecture.md").read_text(), re.M)
    assert len(rows) >= 30, "the tour table was not found"
    wrong = []
    for step, path, functions in rows:
        if not (ROOT / path).is_file():
            wrong.append(f"step {step}: no file {path}")
            continue
        source = (ROOT / path).read_text()
        for name in re.findall(r"`([^`]+)`", re.sub(r"\(.*?\)", "", functions)):  # not "(called by `f`)"
            name = name.split(".")[-1].split("(")[0]
            pattern = rf"(?:def|function|class) {re.escape(name)}\b|^\w[\w\s*]*\b{re.escape(name)}\("
            if not re.search(pattern, source, re.M):
                wrong.append(f"step {step}: {name} not in {path}")
    assert not wrong, "; ".join(wrong)
