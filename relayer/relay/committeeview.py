"""The committee as this member sees it (`CommitteeView`): read from the destination's
EpochVerifier (membership, threshold, generation), why an epoch cannot be accepted now
(readiness), the signatures an epoch is submitted with (this member's and its peers', collected
by the attestation exchange) and whose turn it is to submit or settle an epoch.
"""

from __future__ import annotations

import time

from eth_typing import ChecksumAddress
from eth_utils import to_checksum_address

from relayer.attestation.eip712 import check_canonical, order_signatures, recover_signer, sign_epoch
from relayer.attestation.view import Committee
from relayer.epoch import Attestation
from relayer.errors import AttestationError
from relayer.observability.log import get_logger
from relayer.relay.state import RelayState
from relayer.storage.store import EpochRecord

log = get_logger("relayer.relay")

SHORT_GRACE_SECONDS = 5.0
"""An epoch short of member signatures for this long (or a takeover turn, if longer) makes the
member unready, saying so."""


class CommitteeView(RelayState):
    """The committee's side of a destination's relay (see the module doc)."""

    def signers(self) -> list[str]:
        """This member's attester address (its peers' come with their attestations)."""
        return [self.attester.address]

    def signatures_missing(self) -> int:
        """How many more member signatures the threshold needs than this member (counted as a
        member: not being one is a problem of its own) and its configured peers can give at
        most; 0 when they suffice, or before the committee was first read."""
        committee = self.committee
        if committee is None:
            return 0
        configured = 0 if self.peers is None else max(0, committee.threshold - 1 - self.peers)
        return max([configured] + [missing for _epoch, missing, _seconds in self._short_of_signatures()])

    def _short_of_signatures(self) -> list[tuple[int, int, float]]:
        """(epoch, signatures missing, seconds waited) of each epoch that has waited for its
        threshold longer than a takeover turn (at least SHORT_GRACE_SECONDS): the other members
        are down, unreachable, or computed another root."""
        now = time.monotonic()
        grace = max(SHORT_GRACE_SECONDS, self.takeover_seconds)
        waited = [(epoch, missing, now - since) for epoch, (missing, since) in sorted(self._short.items())]
        return [entry for entry in waited if entry[2] >= grace]

    def committee_problems(self, *, waiting: bool = True) -> list[str]:
        """Why this daemon cannot have an epoch accepted under the current committee, in plain
        words (empty when it can, or before the committee was first read): not a member, a
        threshold its configured peers cannot meet and, with `waiting`, epochs short of member
        signatures for longer than a takeover turn (readiness; not a reason to stop collecting)."""
        committee = self.committee
        if committee is None:
            return []
        problems = []
        if not committee.is_member(self.attester.address):
            problems.append(
                f"attester {self.attester.address} is not in the committee of generation {committee.generation}"
            )
        missing = 0 if self.peers is None else max(0, committee.threshold - 1 - self.peers)
        if missing:
            whose = "member's signature" if missing == 1 else "members' signatures"
            problems.append(
                f"threshold {committee.threshold} needs {missing} more {whose} than this daemon and its "
                f"{self.peers or 0} configured peer(s) can give"
            )
        for epoch, short, waited in self._short_of_signatures() if waiting else []:
            problems.append(
                f"epoch {epoch} waits for {short} more member signature(s) over its root (threshold "
                f"{committee.threshold}) since {waited:.0f} s: the other members are down, unreachable, or signed "
                "another root"
            )
        return problems

    async def refresh_committee(self, *, force: bool = False) -> Committee:
        """Read generation, threshold and members from the EpochVerifier (one JSON-RPC batch),
        at most every `committee_refresh_seconds` unless `force`; update the metrics and log a
        change (`committee.read` first, then `committee.changed`) and, once per change, why no
        epoch can be submitted (`committee.unable`). Raises ChainError (RPC trouble)."""
        now = time.monotonic()
        if self.committee is not None and not force and now - self._committee_read_at < self.committee_refresh_seconds:
            return self.committee
        committee = Committee(*await self.submitter.committee_fields())
        self._committee_read_at = now
        previous, self.committee = self.committee, committee
        destination = self.config.chain
        member = committee.is_member(self.attester.address)
        self.metrics.committee_generation.labels(destination).set(committee.generation)
        self.metrics.committee_threshold.labels(destination).set(committee.threshold)
        self.metrics.committee_size.labels(destination).set(len(committee.members))
        self.metrics.committee_member.labels(destination, self.attester.address).set(1 if member else 0)
        self.metrics.committee_signatures_missing.labels(destination).set(self.signatures_missing())
        if committee != previous:
            log.info("committee.read" if previous is None else "committee.changed", destination=destination,
                     generation=committee.generation, threshold=committee.threshold, members=list(committee.members),
                     attester=self.attester.address, attester_is_member=member)  # fmt: skip
        problems = tuple(self.committee_problems(waiting=False))
        if problems != self._committee_noted:
            self._committee_noted = problems
            if problems:
                log.warning("committee.unable", destination=destination, problems=list(problems))
            else:
                log.info("committee.able", destination=destination, generation=committee.generation)
        return committee

    async def _signatures(self, record: EpochRecord, previous: bytes) -> list[bytes] | None:
        """The signatures to submit `record` with: this member's stored one (made when its proofs
        were verified) and its peers' collected by the attestation exchange, each checked there
        (recovers, a member of the current committee, over this member's own root); exactly
        `threshold` of them, ordered by signer. None (logged once) while fewer are at hand."""
        committee = self.committee
        own = [(str(signer), bytes.fromhex(str(sig)[2:])) for signer, sig in record.content.get("signatures", [])]
        by_signer = {to_checksum_address(signer): sig for signer, sig in own if _canonical(sig)}
        if committee is not None:
            self._sign_for_generation(record, previous, by_signer, committee.generation)
        if self.exchange is not None and committee is not None and committee.threshold > 1:
            collected = await self.exchange.collect(
                chain_id=self.submitter.chain_id, verifier=self.submitter.verifier.contract.address,
                epoch=record.epoch, root=record.root, previous=previous, committee=committee,
            )  # fmt: skip
            for signer, sig in collected.signatures:
                by_signer.setdefault(to_checksum_address(signer), sig)
        if committee is not None:
            by_signer = {s: sig for s, sig in by_signer.items() if committee.is_member(s)}
        need = committee.threshold if committee is not None else 1
        if len(by_signer) < need:
            since = self._short.get(record.epoch, (0, time.monotonic()))[1]
            self._short[record.epoch] = (need - len(by_signer), since)
            if self._awaiting_noted.get(record.epoch) != len(by_signer):
                self._awaiting_noted[record.epoch] = len(by_signer)
                log.info("epoch.awaiting_signatures", epoch=record.epoch, root=record.root, have=len(by_signer),
                         threshold=need, signers=sorted(by_signer))  # fmt: skip
            return None
        self._short.pop(record.epoch, None)
        chosen = sorted(by_signer)[:need]
        self.settler.epoch_signers[record.epoch] = tuple(chosen)
        return order_signatures((s, by_signer[s]) for s in chosen)

    def _sign_for_generation(
        self, record: EpochRecord, previous: bytes, by_signer: dict[ChecksumAddress, bytes], generation: int
    ) -> None:
        """This member's stored signature of `record` was made for the committee generation of
        its creation; after a committee change (a new signing domain, DESIGN section 3) the
        destination refuses it, so the same content, verified by this member when it was
        created, is signed again for `generation` (in `by_signer`) and published again in place
        of the old one (`AttestationExchange.republish`), so that the peers collect it too:
        else an epoch created before a change could never reach the threshold. Checked once per
        epoch and generation."""
        me = to_checksum_address(self.attester.address)
        stored = by_signer.get(me)
        if stored is None:
            return
        key = (record.epoch, generation)
        if key in self._signed_for:
            by_signer[me] = self._signed_for[key]
            return
        chain_id, verifier = self.submitter.chain_id, self.submitter.verifier.contract.address
        try:
            current = recover_signer(chain_id, verifier, record.epoch, record.root, previous, stored,
                                     generation=generation) == me  # fmt: skip
        except AttestationError:
            current = False
        if not current:
            by_signer[me] = sign_epoch(
                self.attester, chain_id, verifier, record.epoch, record.root, previous, generation=generation
            )
            if self.exchange is not None:
                self.exchange.republish(
                    Attestation(chain_id, verifier, record.epoch, record.root, previous, me, by_signer[me]), generation
                )
            log.info("epoch.signed_again", epoch=record.epoch, root=record.root, generation=generation)
        self._signed_for[key] = by_signer[me]

    def _my_turn(self, epoch: int, root: bytes) -> bool:
        """Whether this member submits (or settles) `epoch` now: the members take turns in the
        committee's order, starting at member `epoch mod N`; member k after that waits
        k x `takeover_seconds` from when it was first ready, so a member that is down is
        taken over and one that is alive is not raced."""
        committee = self.committee
        if committee is None or len(committee.members) <= 1 or not committee.is_member(self.attester.address):
            return True
        members = committee.members
        position = (members.index(to_checksum_address(self.attester.address)) - epoch) % len(members)
        since = self._turn_since.setdefault(epoch, time.monotonic())
        if position == 0 or time.monotonic() - since >= position * self.takeover_seconds:
            if position and self._taken_over.get(epoch) != root:
                self._taken_over[epoch] = root
                log.warning("epoch.takeover", epoch=epoch, root=root, designated=members[epoch % len(members)],
                            waited_seconds=round(time.monotonic() - since, 1))  # fmt: skip
            return True
        return False


def _canonical(signature: bytes) -> bool:
    """Whether a stored signature is canonical (low s, v 27/28): the only kind the destination
    accepts (relayer.attestation.eip712.check_canonical)."""
    try:
        check_canonical(signature)
    except AttestationError:
        return False
    return True
