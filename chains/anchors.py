"""Anchor adapters of the destination (DESIGN sections 2 and 4): the per-chain anchor policy of
`MarginSettlement.setAnchorPolicy`, the adapters' deployment, and on anvil the OP Stack `L1Block`
stand-in (chains/contracts/anchors/L1BlockStandIn.sol) and its feeding in the depositor's place.

Adapters (chains/contracts/anchors): `Eip2935Anchor` answers block hashes of the destination's own
chain from the EIP-2935 history contract (Prague), and the history contract's own address selects
MarginSettlement's cheaper built-in path for that chain (kind "eip2935-builtin"); `OpL1BlockAnchor`
answers L1 block hashes on an OP Stack L2 from the `L1Block` predeploy (the current L1 origin live,
earlier ones once recorded), and the predeploy's own address selects MarginSettlement's built-in OP
Stack path (kind "op-l1block-builtin": origins recorded in the settlement with `recordL1Origin`).
The helpers are synchronous (deploy, devnet, tests) and raise `ContractReverted` on a revert.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from eth_typing import ChecksumAddress
from eth_utils import to_checksum_address

from chains.bindings import BindingsError, contract, deploy, transact

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount
    from web3 import Web3
    from web3.types import TxReceipt

POLICIES = {"committee": 0, "prefer-anchor": 1, "require-anchor": 2}
"""Anchor policy names (DESIGN section 2) -> MarginSettlement's POLICY_* values."""
L1_BLOCK_ADDRESS = to_checksum_address("0x4200000000000000000000000000000000000015")
"""The OP Stack `L1Block` predeploy (the stand-in goes to the same address on anvil)."""
DEPOSITOR_ACCOUNT = to_checksum_address("0xdeaddeaddeaddeaddeaddeaddeaddeaddead0001")
"""The OP Stack depositor account, the only one that sets L1Block's values."""
HISTORY_STORAGE_ADDRESS = to_checksum_address("0x0000F90827F1C53a10cb7A02335B175320002935")
"""The EIP-2935 block-hash history contract (Prague)."""


def set_anchor_policy(
    w3: Web3, owner: LocalAccount, settlement: str, chain_id: int, policy: str, anchor: str | None = None
) -> TxReceipt:
    """`MarginSettlement.setAnchorPolicy`: `policy` one of POLICIES; `anchor` the adapter's address
    (None for "committee"). Raises BindingsError for an unknown policy name; reverts UnknownChain,
    InvalidAnchorPolicy, InvalidAnchor, OwnableUnauthorizedAccount (ContractReverted)."""
    if policy not in POLICIES:
        raise BindingsError(f"anchor policy must be one of {', '.join(POLICIES)}, got {policy!r}")
    target = contract(w3, "MarginSettlement", settlement)
    address = to_checksum_address(anchor) if anchor else to_checksum_address(b"\x00" * 20)
    call = target.functions.setAnchorPolicy(chain_id, POLICIES[policy], address)
    return transact(w3, owner, call, what=f"setAnchorPolicy(chain {chain_id}, {policy})")


def _anvil(w3: Web3, method: str, params: list[Any]) -> Any:
    reply = w3.provider.make_request(method, params)  # type: ignore[arg-type]
    if "error" in reply:
        raise BindingsError(f"{method}: {reply['error']}")
    return reply.get("result")


def install_l1block_standin(w3: Web3, deployer: LocalAccount) -> ChecksumAddress:
    """Put L1BlockStandIn's runtime code at L1_BLOCK_ADDRESS (anvil only: `anvil_setCode`) and
    return that address. Its values start at zero until `feed_l1block`."""
    code = w3.eth.get_code(deploy(w3, deployer, "L1BlockStandIn"))
    _anvil(w3, "anvil_setCode", [L1_BLOCK_ADDRESS, "0x" + bytes(code).hex()])
    return L1_BLOCK_ADDRESS


def feed_l1block(w3: Web3, number: int, timestamp: int, basefee: int, block_hash: bytes) -> TxReceipt:
    """Set the stand-in's L1 origin as the depositor would (anvil only: the depositor account is
    impersonated and funded for the call's gas)."""
    _anvil(w3, "anvil_impersonateAccount", [DEPOSITOR_ACCOUNT])
    try:
        _anvil(w3, "anvil_setBalance", [DEPOSITOR_ACCOUNT, hex(10**18)])
        call = contract(w3, "L1BlockStandIn", L1_BLOCK_ADDRESS).functions.setL1BlockValues(
            number, timestamp, basefee, block_hash
        )
        tx_hash = call.transact({"from": DEPOSITOR_ACCOUNT})
        receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=30)
    finally:
        _anvil(w3, "anvil_stopImpersonatingAccount", [DEPOSITOR_ACCOUNT])
    if receipt["status"] != 1:
        raise BindingsError(f"setL1BlockValues({number}) failed")
    return receipt


def record_l1_origin(w3: Web3, sender: LocalAccount, settlement: str) -> TxReceipt:
    """`MarginSettlement.recordL1Origin()` (permissionless): the predeploy's current L1 origin recorded
    for the chain whose adapter is L1_BLOCK_ADDRESS. Reverts L1OriginRefused, L1OriginConflict,
    AnchorUnavailable (ContractReverted)."""
    call = contract(w3, "MarginSettlement", settlement).functions.recordL1Origin()
    return transact(w3, sender, call, what="recordL1Origin")


def deploy_anchor(w3: Web3, deployer: LocalAccount, kind: str, l1_chain_id: int = 0) -> ChecksumAddress:
    """Deploy the adapter of `kind`: "eip2935" (Eip2935Anchor) or "op-l1block" (OpL1BlockAnchor over
    L1_BLOCK_ADDRESS for L1 chain `l1_chain_id`; the predeploy or the stand-in must be there).
    "eip2935-builtin" deploys nothing: it returns HISTORY_STORAGE_ADDRESS, which as the adapter of the
    destination's own chain selects MarginSettlement's built-in EIP-2935 path (no adapter call, the
    cheap one); raises BindingsError when the chain has no history contract (before Prague).
    "op-l1block-builtin" deploys nothing either: it returns L1_BLOCK_ADDRESS, which as the adapter of
    an L1 chain selects MarginSettlement's built-in OP Stack path (`record_l1_origin`); raises
    BindingsError when nothing is at the predeploy's address."""
    if kind == "op-l1block-builtin":
        if not w3.eth.get_code(L1_BLOCK_ADDRESS):
            raise BindingsError(f"no L1Block predeploy (or stand-in) at {L1_BLOCK_ADDRESS}")
        return L1_BLOCK_ADDRESS
    if kind == "eip2935-builtin":
        if not w3.eth.get_code(HISTORY_STORAGE_ADDRESS):
            raise BindingsError(f"no EIP-2935 history contract at {HISTORY_STORAGE_ADDRESS} (a chain before Prague)")
        return HISTORY_STORAGE_ADDRESS
    if kind == "eip2935":
        return deploy(w3, deployer, "Eip2935Anchor")
    if kind == "op-l1block":
        return deploy(w3, deployer, "OpL1BlockAnchor", L1_BLOCK_ADDRESS, l1_chain_id)
    raise BindingsError(f"anchor kind must be eip2935, eip2935-builtin, op-l1block or op-l1block-builtin, got {kind!r}")
