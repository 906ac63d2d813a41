"""Helpers for the Verkle (EIP-6800) tests: the vectors folder and its witness cases."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any


def pointer(doc: Any, path: str) -> Any:
    """RFC 6901 JSON pointer lookup (no escapes needed in the vectors)."""
    for part in path.split("/")[1:]:
        doc = doc[int(part)] if isinstance(doc, list) else doc[part]
    return doc


@cache
def _load(path: Path) -> Any:
    return json.loads(path.read_text())


def load(vectors: Path, name: str) -> Any:
    return _load(vectors / "verkle" / name)


def witness_cases(vectors: Path) -> list[dict[str, Any]]:
    """cases.json entries with the witness object resolved under "witness"."""
    out = []
    for case in load(vectors, "kaustinen/cases.json")["cases"]:
        doc = load(vectors, case["file"])
        out.append({**case, "witness": pointer(doc, case["witness_pointer"])})
    return out


def numeric_suffixes(witness: dict[str, Any]) -> dict[str, Any]:
    """camelCase witness with numeric suffixes (what the npm oracle accepts): snake_case keys of
    the K2 payloads and decimal-string suffixes converted."""
    from chains.verkle import parse_witness

    w = parse_witness(witness)
    p = w.verkle_proof

    def h(b: bytes | None) -> str | None:
        return None if b is None else "0x" + b.hex()

    return {
        "stateDiff": [
            {
                "stem": h(sd.stem),
                "suffixDiffs": [
                    {"suffix": d.suffix, "currentValue": h(d.current_value), "newValue": h(d.new_value)}
                    for d in sd.suffix_diffs
                ],
            }
            for sd in w.state_diff
        ],
        "verkleProof": {
            "otherStems": [h(s) for s in p.other_stems],
            "depthExtensionPresent": h(p.depth_extension_present),
            "commitmentsByPath": [h(c) for c in p.commitments_by_path],
            "d": h(p.d),
            "ipaProof": {
                "cl": [h(c) for c in p.ipa_proof.cl],
                "cr": [h(c) for c in p.ipa_proof.cr],
                "finalEvaluation": h(p.ipa_proof.final_evaluation),
            },
        },
    }
