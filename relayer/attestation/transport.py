"""The two transports of the attestation exchange (relayer.attestation.committee), neither of
them trusted: the other members' HTTP listeners (`PeerFetcher`: `GET
/v1/attestations/{chain_id}/{epoch}` -> `{"attestations": [...]}`) and a shared directory
(`SharedDirectory`: one JSON file per attestation, written atomically). Both hand back raw JSON
items, bounded in size and number; checking them is the exchange's.
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import aiohttp

from chains.errors import MalformedJson
from chains.jsonparse import parse_json
from relayer.config import endpoint_host
from relayer.epoch import Attestation
from relayer.observability.log import get_logger
from relayer.observability.metrics import Metrics

log = get_logger("relayer.attestation.committee")

MAX_RESPONSE_BYTES = 1 << 20
"""A peer's answer larger than this (bytes) is garbage: a committee is far smaller."""
MAX_ATTESTATIONS_PER_SOURCE = 1024
"""At most this many items of one answer (or files of the shared directory) are looked at."""
MAX_FILE_BYTES = 4096
"""A file in the shared directory larger than this (bytes) is refused unread."""

Refuse = Callable[[str, str, int, str], None]
"""(reason, source, epoch, detail): an item refused, counted and logged by the exchange."""


class PeerFetcher:
    """Asks each peer for an epoch's attestations, each within `timeout_seconds`; counts the
    outcome per peer host (`relayer_attestation_fetches_total`) and logs a peer that fails (once
    per outcome) and one that is back."""

    def __init__(self, *, metrics: Metrics, destination: str, timeout_seconds: float) -> None:
        self.metrics = metrics
        self.destination = destination
        self.timeout_seconds = timeout_seconds
        self._failing: dict[str, str] = {}  # peer host -> the outcome it last failed with

    async def fetch_all(self, peers: Sequence[str], chain_id: int, epoch: int) -> list[tuple[str, list[object]]]:
        """(source, raw items) of every peer, fetched concurrently."""
        timeout = aiohttp.ClientTimeout(total=self.timeout_seconds)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            return list(await asyncio.gather(*(self._fetch(session, peer, chain_id, epoch) for peer in peers)))

    async def _fetch(
        self, session: aiohttp.ClientSession, peer: str, chain_id: int, epoch: int
    ) -> tuple[str, list[object]]:
        """(source, raw items) of one peer; no items when it is down, slow or serves garbage."""
        host = endpoint_host(peer)
        source = f"peer {host}"
        outcome, detail = "ok", ""
        items: list[object] = []
        try:
            async with asyncio.timeout(self.timeout_seconds):
                async with session.get(f"{peer}/v1/attestations/{chain_id}/{epoch}", allow_redirects=False) as answer:
                    body = bytearray()
                    async for chunk in answer.content.iter_chunked(65536):
                        body += chunk
                        if len(body) > MAX_RESPONSE_BYTES:
                            break
            if answer.status != 200:
                outcome, detail = "error", f"HTTP {answer.status}"
            elif len(body) > MAX_RESPONSE_BYTES:
                outcome, detail = "garbage", f"answer larger than {MAX_RESPONSE_BYTES} bytes"
            else:
                items, problem = parse_answer(bytes(body))
                if problem:
                    outcome, detail = "garbage", problem
        except TimeoutError:
            outcome, detail = "timeout", f"no answer within {self.timeout_seconds} s"
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            outcome, detail = "error", f"{type(exc).__name__}: {exc}"[:300]
        self._note_outcome(host, epoch, outcome, detail)
        if len(items) > MAX_ATTESTATIONS_PER_SOURCE:
            log.warning("attestation.too_many", destination=self.destination, source=source, count=len(items))
            items = items[:MAX_ATTESTATIONS_PER_SOURCE]
        return source, items

    def _note_outcome(self, host: str, epoch: int, outcome: str, detail: str) -> None:
        """Count one fetch; log a peer that fails (at warning level when its outcome changes)
        and one that is back."""
        self.metrics.attestation_fetches.labels(self.destination, host, outcome).inc()
        previous = self._failing.get(host)
        if outcome == "ok":
            if previous is not None:
                self._failing.pop(host)
                log.info("attestation.peer_back", destination=self.destination, peer=host)
        else:
            self._failing[host] = outcome
            (log.warning if previous != outcome else log.debug)(
                "attestation.peer_failed", destination=self.destination, peer=host, epoch=epoch, outcome=outcome,
                reason=detail,
            )  # fmt: skip


def parse_answer(body: bytes) -> tuple[list[object], str]:
    """(items, "") of a peer's `{"attestations": [...]}` answer, or ([], why it is garbage)."""
    try:
        document = parse_json(body, max_bytes=MAX_RESPONSE_BYTES, what="peer answer")
    except MalformedJson as exc:
        return [], exc.detail[:200]
    if not isinstance(document, dict) or not isinstance(document.get("attestations"), list):
        return [], 'expected {"attestations": [...]}'
    return list(document["attestations"]), ""


class SharedDirectory:
    """A directory the members share: each attestation one file `Attestation.file_name()`."""

    def __init__(self, directory: Path, destination: str) -> None:
        self.directory = directory
        self.destination = destination

    def has(self, att: Attestation) -> bool:
        """Whether `att`'s file is in the directory."""
        return (self.directory / att.file_name()).exists()

    def write(self, att: Attestation) -> None:
        """Write `att`'s file atomically (temp file, fsync, rename; readable by other users). A
        directory that cannot be written is logged (`attestation.publish_failed`), not raised."""
        directory = self.directory
        tmp: str | None = None
        try:
            fd, tmp = tempfile.mkstemp(prefix=".att-", suffix=".tmp", dir=directory)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(att.to_json(), handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(tmp, 0o644)  # other members may run as other users
            os.replace(tmp, directory / att.file_name())
            tmp = None
        except OSError as exc:
            log.warning(
                "attestation.publish_failed", destination=self.destination, epoch=att.epoch,
                directory=str(directory), error=str(exc),
            )  # fmt: skip
        finally:
            if tmp is not None:
                try:
                    os.unlink(tmp)
                except OSError:
                    pass

    def read(
        self, chain_id: int, epoch: int, refuse: Refuse, first_time: Callable[[tuple[object, ...]], bool]
    ) -> list[tuple[str, list[object]]]:
        """(source, [item]) for each attestation file of the epoch (at most
        MAX_ATTESTATIONS_PER_SOURCE); a file too large or not JSON is `refuse`d, an unreadable
        directory logged (when `first_time` says so for its error)."""
        directory = self.directory
        try:
            paths = sorted(directory.glob(f"att-{chain_id}-{epoch}-*.json"))
        except OSError as exc:
            if first_time(("directory", str(exc))):
                log.warning("attestation.directory_unreadable", destination=self.destination,
                            directory=str(directory), error=str(exc))  # fmt: skip
            return []
        out: list[tuple[str, list[object]]] = []
        for path in paths[:MAX_ATTESTATIONS_PER_SOURCE]:
            source = f"file {path.name}"
            try:
                if path.stat().st_size > MAX_FILE_BYTES:
                    refuse("malformed", source, epoch, f"file larger than {MAX_FILE_BYTES} bytes")
                    continue
                data = path.read_bytes()
            except OSError as exc:
                log.debug("attestation.file_unreadable", destination=self.destination, source=source, error=str(exc))
                continue
            try:
                out.append((source, [parse_json(data, max_bytes=MAX_FILE_BYTES, what="attestation file")]))
            except MalformedJson as exc:
                refuse("malformed", source, epoch, exc.detail)
        return out
