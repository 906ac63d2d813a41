"""Every Prometheus metric of the relayer, declared in one place (prefix `relayer_`).

One `Metrics` object per daemon, each with its own registry, so that several daemons can run
in one process (tests) without clashing.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800, 3600)
VERIFY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)


class Metrics:
    """The relayer's metrics. Units are in the names; counters end in `_total`."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.chain_head = Gauge(
            "relayer_chain_head_block", "Latest block number seen per chain.", ["chain"], registry=r
        )
        self.chain_head_lag = Gauge(
            "relayer_chain_head_lag_seconds",
            "Seconds between now and the timestamp of the latest block seen per chain.",
            ["chain"],
            registry=r,
        )
        self.chain_finalized = Gauge(
            "relayer_chain_finalized_block",
            "Finalized (or confirmed) block number per chain.",
            ["chain"],
            registry=r,
        )
        self.snapshots_proven = Counter(
            "relayer_snapshots_proven_total",
            "Snapshots whose header and every proof verified.",
            ["chain"],
            registry=r,
        )
        self.proofs_verified = Counter(
            "relayer_proofs_verified_total",
            "Account and storage proofs verified natively.",
            ["chain"],
            registry=r,
        )
        self.storage_keys_requested = Counter(
            "relayer_storage_keys_requested_total",
            "Storage keys asked of eth_getProof (or the Verkle witness) for snapshots, per source "
            "chain: with delta epochs it follows the vault's activity, not its number of depositors.",
            ["chain"],
            registry=r,
        )
        self.proofs_rejected = Counter(
            "relayer_proofs_rejected_total",
            "Snapshots rejected, by reason.",
            ["chain", "reason"],
            registry=r,
        )
        self.block_hash_confirmations = Counter(
            "relayer_block_hash_confirmations_total",
            "Proven block hashes checked with an endpoint on another host, by chain and outcome: "
            "confirmed, mismatch (snapshot rejected), unavailable (no other endpoint answered: "
            "retried later), single_endpoint (the chain has no other host: not cross-checked).",
            ["chain", "outcome"],
            registry=r,
        )
        self.confirmation_held = Counter(
            "relayer_confirmation_held_total",
            "Snapshots held because no endpoint on another node confirmed the proven block hash, by "
            "chain and cause: down, timeout, chain_id, one_node, no_block, garbage, error, mismatch "
            "(relayer.proving.prover.CONFIRMATION_CAUSES). Nothing is signed for the height; retried.",
            ["chain", "cause"],
            registry=r,
        )
        self.verify_seconds = Histogram(
            "relayer_verify_seconds",
            "Time to verify one snapshot's header and proofs natively.",
            ["chain"],
            buckets=VERIFY_BUCKETS,
            registry=r,
        )
        self.claims_per_batch = Histogram(
            "relayer_claims_per_epoch",
            "Claims aggregated into one epoch.",
            buckets=(1, 5, 10, 50, 100, 500, 1000, 5000, 10000, 50000),
            registry=r,
        )
        self.epochs_signed = Counter("relayer_epochs_signed_total", "Epochs signed by the attester.", registry=r)
        self.epochs_submitted = Counter("relayer_epochs_submitted_total", "Epoch transactions sent.", registry=r)
        self.l1_origins_recorded = Counter(
            "relayer_l1_origins_recorded_total",
            "recordL1Origin() sent for an epoch's L1 block the OP Stack anchor knew only live.",
            ["chain"],
            registry=r,
        )
        self.epochs_confirmed = Counter(
            "relayer_epochs_confirmed_total", "Epochs accepted on the destination.", registry=r
        )
        self.settlements_confirmed = Counter(
            "relayer_settlements_confirmed_total", "Accounts settled on the destination.", registry=r
        )
        self.settlement_latency = Histogram(
            "relayer_settlement_latency_seconds",
            "From the source block's timestamp to the destination receipt.",
            ["chain"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.rpc_requests = Counter(
            "relayer_rpc_requests_total",
            "JSON-RPC requests by chain, host, method and outcome.",
            ["chain", "host", "method", "outcome"],
            registry=r,
        )
        self.rpc_latency = Histogram(
            "relayer_rpc_latency_seconds",
            "JSON-RPC request latency.",
            ["chain", "host", "method"],
            registry=r,
        )
        self.tx_gas_used = Counter(
            "relayer_tx_gas_used_total",
            "Gas used by confirmed destination transactions.",
            ["kind"],
            registry=r,
        )
        self.signer_balance = Gauge(
            "relayer_signer_balance_wei", "Balance of the destination sender.", ["chain"], registry=r
        )
        self.reorgs = Counter(
            "relayer_reorgs_total",
            "Reorgs seen: `shallow` above the finality setting, `beyond_finality` of a proven block.",
            ["chain", "depth"],
            registry=r,
        )
        self.backlog_age = Gauge(
            "relayer_backlog_oldest_age_seconds",
            "Age of the oldest snapshot height that is due but not yet relayed (0 when none).",
            registry=r,
        )
        self.rpc_retries = Counter(
            "relayer_rpc_retries_total",
            "Idempotent JSON-RPC calls retried on another endpoint, by chain, host, method and reason.",
            ["chain", "host", "method", "reason"],
            registry=r,
        )
        self.committee_generation = Gauge(
            "relayer_committee_generation",
            "Committee generation of the destination's EpochVerifier (+1 per setCommittee).",
            ["destination"],
            registry=r,
        )
        self.committee_threshold = Gauge(
            "relayer_committee_threshold",
            "Member signatures an epoch needs on the destination's EpochVerifier.",
            ["destination"],
            registry=r,
        )
        self.committee_size = Gauge(
            "relayer_committee_size", "Members of the destination's current committee.", ["destination"], registry=r
        )
        self.committee_member = Gauge(
            "relayer_committee_member",
            "1 when this daemon's attester is a member of the destination's current committee, else 0.",
            ["destination", "attester"],
            registry=r,
        )
        self.committee_signatures_missing = Gauge(
            "relayer_committee_signatures_missing",
            "Member signatures the threshold needs beyond those this daemon can collect (0: it can "
            "submit epochs; above 0 it creates none).",
            ["destination"],
            registry=r,
        )
        self.attestation_conflicts = Counter(
            "relayer_attestation_conflicts_total",
            "Epochs for which a committee member signed, or the destination accepted, another root "
            "than this member computed (each distinct signer and root counted once); evidence in "
            "/readyz and the store.",
            ["destination"],
            registry=r,
        )
        self.attestations_refused = Counter(
            "relayer_attestations_refused_total",
            "Attestations from peers or the shared directory refused and never used, by destination "
            "and reason (malformed, wrong_domain, wrong_epoch, non_canonical, not_member, too_many, "
            "bad_signature, refused_on_chain).",
            ["destination", "reason"],
            registry=r,
        )
        self.attestation_recoveries = Counter(
            "relayer_attestation_recoveries_total",
            "Signature recoveries (secp256k1 public key recovery, the expensive check) run on "
            "attestations from peers or the shared directory, by destination: only for canonical "
            "signatures claimed by a committee member, within the per-source caps.",
            ["destination"],
            registry=r,
        )
        self.attestation_conflicts_unacknowledged = Gauge(
            "relayer_attestation_conflicts_unacknowledged",
            "Conflict evidence (another root signed by a member or accepted by the destination) that "
            "no operator acknowledged yet (`relayer conflicts list|ack`), by destination.",
            ["destination"],
            registry=r,
        )
        self.attestation_fetches = Counter(
            "relayer_attestation_fetches_total",
            "Requests for attestations to other committee members, by destination, peer host and "
            "outcome (ok, error, timeout, garbage).",
            ["destination", "host", "outcome"],
            registry=r,
        )
        self.backlog = Gauge("relayer_backlog_snapshots", "Snapshots due but not yet relayed.", registry=r)
        self.round_failures = Counter(
            "relayer_round_failures_total",
            "Relay rounds that failed (chain or submission errors), by destination; retried after a pause.",
            ["destination"],
            registry=r,
        )
        self.epochs_failed = Counter(
            "relayer_epochs_failed_total",
            "Epochs given up, by reason (reorg, superseded, revoked, reverted errors, retries_exhausted, "
            "...); the epoch number is planned again by the epoch rule (after a pause unless the plan changed).",
            ["reason"],
            registry=r,
        )
        self.tx_submitted = Counter(
            "relayer_tx_submitted_total",
            "Destination transactions (idempotency keys) first accepted by the node, by kind.",
            ["kind"],
            registry=r,
        )
        self.tx_replaced = Counter(
            "relayer_tx_replaced_total",
            "Fee-bumped replacements (same nonce) accepted by the node, by kind.",
            ["kind"],
            registry=r,
        )
        self.tx_rebroadcast = Counter(
            "relayer_tx_rebroadcast_total",
            "Signed transactions sent again unchanged after the node dropped them, by kind.",
            ["kind"],
            registry=r,
        )
        self.tx_reorged = Counter(
            "relayer_tx_reorged_total",
            "Mined destination transactions a destination reorg dropped, sent again unchanged "
            "(same nonce and fees), by kind.",
            ["kind"],
            registry=r,
        )
        self.tx_fee_budget_exhausted = Counter(
            "relayer_tx_fee_budget_exhausted_total",
            "Fee bumps refused because they would raise what an epoch's transactions can cost above "
            "fee_budget_multiple x what they were first signed with, by kind.",
            ["kind"],
            registry=r,
        )
        self.tx_failed = Counter(
            "relayer_tx_failed_total",
            "Destination transactions that failed, by kind and reason (reverted, rejected, timeout, fee_cap).",
            ["kind", "reason"],
            registry=r,
        )
        self.keeper_requests = Counter(
            "relayer_keeper_requests_total",
            "Keeper API requests (/v1/proofs), by outcome: served, bad_request, rate_limited, "
            "busy (too many waiting), unavailable (the destination could not be asked).",
            ["outcome"],
            registry=r,
        )
        # the watchtower (`relayer watch`, relayer.watch)
        self.challenges = Counter(
            "relayer_challenges_total",
            "Lies of a signed epoch answered by the watchtower, by kind (header, claim, anchor, block_hash) "
            "and outcome: won (the challenge voided the chain), already_voided (someone else won), "
            "alert_only (no sender key), unrefutable (a block hash no anchor confirms), refused (the contract "
            "says NotALie), failed.",
            ["kind", "outcome"],
            registry=r,
        )
        self.watch_judged = Counter(
            "relayer_watch_blocks_judged_total",
            "Settled block leaves re-proven by the watchtower, by source chain and verdict (honest or a lie kind).",
            ["chain", "verdict"],
            registry=r,
        )
        self.watch_lag = Gauge(
            "relayer_watch_lag_blocks",
            "Destination blocks final enough to read (head - confirmations) that the watchtower has not read yet.",
            registry=r,
        )
        self.watch_held = Gauge(
            "relayer_watch_held_settlements",
            "Settlement transactions the watchtower could not check yet, by reason (pending: the block is not "
            "final on the source yet; any other reason makes it not ready: fail closed).",
            ["reason"],
            registry=r,
        )
        self.leader = Gauge(
            "relayer_leader",
            "1 while this process acts for its committee member (the lease holder of a standby pair, "
            "or a single process with a SQLite store), 0 while it is a standby (relayer.leadership).",
            ["member"],
            registry=r,
        )
        self.lease_transitions = Counter(
            "relayer_lease_transitions_total",
            "Changes of this process's role in its member's standby pair, by the role taken (leader or standby).",
            ["member", "role"],
            registry=r,
        )

    def on_rpc(self, chain: str) -> RpcHook:
        """A callback for `chains.rpc.RpcClient(on_request=...)` counting into these metrics."""
        return RpcHook(self, chain)

    def on_retry(self, chain: str) -> RetryHook:
        """A callback for `chains.fallback.FallbackClient(on_retry=...)`."""
        return RetryHook(self, chain)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class RpcHook:
    def __init__(self, metrics: Metrics, chain: str) -> None:
        self._metrics = metrics
        self._chain = chain

    def __call__(self, method: str, host: str, outcome: str, seconds: float) -> None:
        self._metrics.rpc_requests.labels(self._chain, host, method, outcome).inc()
        self._metrics.rpc_latency.labels(self._chain, host, method).observe(seconds)


class RetryHook:
    def __init__(self, metrics: Metrics, chain: str) -> None:
        self._metrics = metrics
        self._chain = chain

    def __call__(self, method: str, host: str, reason: str) -> None:
        self._metrics.rpc_retries.labels(self._chain, host, method, reason).inc()
