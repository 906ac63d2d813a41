"""Following the destination: every settlement it counted, read once, judged, answered.

`Watchtower.poll` reads MarginSettlement's `BlockSettled` logs from the next unread destination block
up to head - `confirmations` (at most `max_blocks` per poll), groups them by transaction, and per
transaction decodes what was settled (relayer.watch.evidence), re-proves each settled block against
the watchtower's own source endpoints (relayer.watch.verdict) and answers a lie
(relayer.watch.challenge). Each judged block is recorded (`SettledBlock.key`) before the cursor
moves, so a restart or a second read never judges or challenges it twice.

Fail closed (DESIGN section 7): a transaction whose evidence cannot be read, whose block is not
final on the source yet, whose source is not configured or unreachable, or whose challenge could not
be sent is held (`watch_held`), counted in `relayer_watch_held_settlements{reason}` and tried again at
every poll; `ready` is false while any is held for another reason than "pending".

Destination reorgs: the hash of the last block of each poll is kept (READ_HASHES_KEPT of them); when
it changed, the blocks are read again from the newest kept block that is still canonical, or from
`start_block` when none is (judgements are keyed by content: what was judged is not judged again).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass

from eth_abi import decode as abi_decode

from chains.bindings import ContractAbi
from chains.errors import ChainError, RpcGarbageError
from chains.hexcodec import HexDecodeError, hex_to_bytes, hex_to_int
from chains.methods import RpcMethods
from relayer.errors import RelayerError
from relayer.observability.log import get_logger
from relayer.observability.metrics import Metrics
from relayer.watch.challenge import Responder
from relayer.watch.evidence import (
    BLOCK_SETTLED_TOPIC,
    EvidenceUnavailable,
    SettledBlock,
    SettlementCalldata,
    settled_in,
)
from relayer.watch.store import WatchStore
from relayer.watch.verdict import SourceProofFailed, judge

log = get_logger("relayer.watch")

Logged = tuple[int, int, int]
"""A `BlockSettled` log: (chainId, blockNumber, epoch)."""


class Held(RelayerError):
    """A settlement that cannot be judged now; `reason` is the metric label."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


@dataclass(frozen=True)
class Source:
    """A source chain as the watchtower reads it: its own endpoints (`client`) and which height is
    final: "finalized" / "safe" (the node's tags), "confirmations" (head - `confirmations`), "head"."""

    chain_id: int
    client: RpcMethods
    finality: str = "finalized"
    confirmations: int = 0

    async def final_height(self) -> int:
        if self.finality in ("finalized", "safe"):
            block = await self.client.get_block(self.finality)
            return -1 if block is None else int(str(block["number"]), 16)
        head = await self.client.block_number()
        return head - self.confirmations if self.finality == "confirmations" else head


class Watchtower:
    """Reads, judges and answers the settlements of the MarginSettlement at `settlement` on the
    destination `client` (see the module doc). `sources`: chain id -> Source; `start_block`: the
    first destination block read on a first run."""

    def __init__(
        self,
        client: RpcMethods,
        settlement: str,
        sources: Mapping[int, Source],
        store: WatchStore,
        responder: Responder,
        metrics: Metrics,
        *,
        confirmations: int = 0,
        start_block: int = 0,
        max_blocks: int = 1_000,
    ) -> None:
        self.client = client
        self.abi = ContractAbi("MarginSettlement", settlement)
        self.settlement = self.abi.address
        self.sources = dict(sources)
        self.store = store
        self.responder = responder
        self.metrics = metrics
        self.confirmations = confirmations
        self.start_block = start_block
        self.max_blocks = max_blocks
        self.decoder = SettlementCalldata()
        self.lag = 0

    @property
    def ready(self) -> bool:
        """False while a settlement is held for another reason than "pending" (fail closed)."""
        return all(reason == "pending" for _tx, _block, reason in self.store.held())

    async def poll(self) -> int:
        """Read the next final destination blocks once; returns how many were read. Raises
        RpcError when the destination cannot be reached (nothing is recorded then)."""
        await self._follow_reorg()
        start = self.store.next_block(self.start_block)
        final = await self.client.block_number() - self.confirmations
        for tx_hash, block, _reason in self.store.held():
            await self._check(tx_hash, block, None)
        end = min(final, start + self.max_blocks - 1)
        if end >= start:
            before = await self.client.get_block(end)
            for tx_hash, (block, logged) in (await self._logs(start, end)).items():
                await self._check(tx_hash, block, logged)
            after = await self.client.get_block(end)
            if before is not None and after is not None and before.get("hash") == after.get("hash"):
                self.store.advance(end + 1, [(end, str(after["hash"]))])
            else:  # the blocks changed while they were read: read them again next time
                log.warning("watch.reorg", read_again_from=start)
                end = start - 1
        self.lag = max(0, final - max(end, start - 1))
        self.metrics.watch_lag.set(self.lag)
        self._count_held()
        return max(0, end - start + 1)

    async def _follow_reorg(self) -> None:
        for number, known in self.store.read_hashes():
            block = await self.client.get_block(number)
            if block is not None and str(block["hash"]).lower() == known.lower():
                if number + 1 < self.store.next_block(self.start_block):
                    log.warning("watch.reorg", read_again_from=number + 1)
                    self.store.rewind(number + 1)
                return
        if self.store.read_hashes():  # none of the kept blocks is canonical any more: read all again
            log.error("watch.deep_reorg", read_again_from=self.start_block)
            self.store.rewind(self.start_block)

    async def _logs(self, start: int, end: int) -> dict[str, tuple[int, list[Logged]]]:
        wanted = {"address": self.settlement, "topics": ["0x" + BLOCK_SETTLED_TOPIC.hex()]}
        logs = await self.client.get_logs({**wanted, "fromBlock": start, "toBlock": end})
        by_tx: dict[str, tuple[int, list[Logged]]] = defaultdict(lambda: (0, []))
        for entry in logs:
            try:
                topics = [hex_to_bytes(t, size=32) for t in entry.get("topics", [])]
                tx_hash = "0x" + hex_to_bytes(entry.get("transactionHash"), size=32).hex()
                block = hex_to_int(entry.get("blockNumber"))
            except HexDecodeError as exc:  # our own node's garbage: nothing recorded, read again
                raise RpcGarbageError(str(exc), method="eth_getLogs", host=self.client.host) from exc
            if len(topics) != 4 or bool(entry.get("removed")):
                continue
            logged = by_tx[tx_hash][1]
            logged.append(tuple(int.from_bytes(t, "big") for t in topics[1:]))  # type: ignore[arg-type]
            by_tx[tx_hash] = (block, logged)
        return dict(by_tx)

    async def _logged(self, tx_hash: str, block: int) -> list[Logged]:
        return (await self._logs(block, block)).get(tx_hash, (block, []))[1]

    async def _check(self, tx_hash: str, block: int, logged: list[Logged] | None) -> None:
        """Judge and answer every block settled by `tx_hash`; hold it when that cannot be done now."""
        try:
            if logged is None:
                logged = await self._logged(tx_hash, block)
            for settled in await settled_in(self.client, tx_hash, self.settlement, logged, self.decoder):
                if not self.store.judged(settled.key):
                    await self._judge(settled)
        except EvidenceUnavailable as exc:
            self._hold(tx_hash, block, exc.reason, str(exc))
        except Held as exc:
            self._hold(tx_hash, block, exc.reason, str(exc))
        except SourceProofFailed as exc:
            self._hold(tx_hash, block, "source_proof", str(exc))
        except (ChainError, RelayerError) as exc:  # a node down, a challenge not sent: tried again
            self._hold(tx_hash, block, "unavailable", f"{type(exc).__name__}: {exc}")
        except (ValueError, KeyError, TypeError) as exc:  # an answer of unexpected shape: held, never a crash
            self._hold(tx_hash, block, "error", f"{type(exc).__name__}: {exc}")
        else:
            self.store.release(tx_hash)

    def _hold(self, tx_hash: str, block: int, reason: str, detail: str) -> None:
        event = log.info if reason == "pending" else log.error
        event("watch.held", tx=tx_hash, block=block, reason=reason, detail=detail)
        self.store.hold(tx_hash, block, reason, detail)

    def _count_held(self) -> None:
        counts: dict[str, int] = defaultdict(int)
        for _tx, _block, reason in self.store.held():
            counts[reason] += 1
        self.metrics.watch_held.clear()
        for reason, count in counts.items():
            self.metrics.watch_held.labels(reason=reason).set(count)

    async def _collateral_slot(self, chain_id: int) -> int:
        """The collateral slot of `chain_id`'s current registration: the slot a challenge is checked
        against (a new slot starts a new registration, under which older positions count zero and
        older epochs cannot be challenged); read at the head, so no archive node is needed."""
        data = self.abi.encode_abi("vaultConfig", [chain_id])
        answer = await self.client.eth_call({"to": self.settlement, "data": data})
        return int(abi_decode(self.abi.output_types("vaultConfig"), answer)[4])

    async def _judge(self, settled: SettledBlock) -> None:
        source = self.sources.get(settled.chain_id)
        if source is None:
            raise Held("unknown_chain", f"chain {settled.chain_id} has no source endpoints in the config")
        slot = await self._collateral_slot(settled.chain_id)
        verdict = await judge(source.client, settled, slot, await source.final_height())
        if verdict.kind == "pending":
            raise Held("pending", verdict.detail)
        outcome = await self.responder.respond(settled, verdict, slot) if verdict.lie else None
        self.metrics.watch_judged.labels(chain=str(settled.chain_id), verdict=verdict.kind).inc()
        log.info("watch.judged", key=settled.key, verdict=verdict.kind, outcome=outcome, tx=settled.tx_hash)
        self.store.record_judged(
            settled.key, settled.epoch, settled.chain_id, settled.block_number, settled.tx_hash, verdict.kind,
            outcome, verdict.detail,
        )  # fmt: skip
