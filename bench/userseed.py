"""Seeding for bench/users.py: depositors made fast on anvil, real to the vault (a bench-only
UsersSeeder contract put at the vault's address with `anvil_setCode` writes the collateral slots
and emits the vault's own `Deposited` logs, then the vault's code is put back)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from eth_abi import encode
from eth_utils import keccak, to_checksum_address
from web3 import Web3

from bench.gas import compile_bench_contracts
from bench.relay import batch
from chains.anvil import rpc
from chains.bindings import contract
from relayer import devnet

SEED_PER_TX = 1_000
"""Accounts per seeding transaction (one per block): 25.1M gas of the 30M block."""
SEED_GAS = 27_000_000
SEED_SALT = b"bench-users depositor %d"
MAX_FEE = 1_000 * 10**9


def depositor(i: int) -> str:
    """The i-th seeded depositor: a plain address (keccak of SEED_SALT % i, its last 20 bytes)."""
    return to_checksum_address(keccak(SEED_SALT % i)[-20:])


def amount_of(i: int) -> int:
    """What the i-th seeded depositor deposited, in wei: 0.001 ETH + i wei (all distinct)."""
    return 10**15 + i


def runtime_code(url: str, creation: str, sender: str) -> str:
    """The runtime code of `creation` (deployed by `sender` once on the node, then read back)."""
    tx = rpc(url, "eth_sendTransaction", [{"from": sender, "data": creation, "gas": hex(5_000_000)}])
    while (receipt := rpc(url, "eth_getTransactionReceipt", [tx])) is None:
        time.sleep(0.1)
    assert isinstance(receipt, dict)
    if int(receipt["status"], 16) != 1:
        raise RuntimeError("deploying UsersSeeder failed")
    return str(rpc(url, "eth_getCode", [receipt["contractAddress"], "latest"]))


def off_epoch_height(url: str) -> None:
    """Mine empty blocks until the latest is no multiple of the devnet's `every_blocks`: anvil's
    cheat calls (`anvil_setCode`, `anvil_setBalance`) rewrite the latest block's state under its
    header, so that block can never be proven again, and an epoch height there would be refused
    until the epoch rule's retry period moved it on."""
    while int(str(rpc(url, "eth_blockNumber", [])), 16) % devnet.EVERY_BLOCKS == 0:
        rpc(url, "evm_mine", [])


def seed(url: str, vault: str, count: int, fund: Sequence[str], say: Callable[[str], None],
         per_block: int = SEED_PER_TX, block_time: int = 1) -> float:  # fmt: skip
    """Seed depositors 0..`count`-1 (`depositor`, `amount_of`) into `vault` on the node at `url`
    (the module doc says how), `per_block` in each block (above SEED_PER_TX the block gas limit is
    raised for the seeding blocks and set back after), and fund `fund` with 1 ETH each; then a block
    every `block_time` s (the devnet's pace, 1 s, unless told); returns the
    seconds it took (compiling the seeder included). Raises RuntimeError when a seeding transaction
    reverts or a value read back through the vault's code differs."""
    started = time.monotonic()
    seeder = compile_bench_contracts()["UsersSeeder"]
    sender = devnet.dev_account(0).address
    selector = keccak(b"seed(address[],uint256[])")[:4]
    real = str(rpc(url, "eth_getCode", [vault, "latest"]))
    seeder_code = runtime_code(url, seeder["bytecode"], sender)
    rpc(url, "evm_setIntervalMining", [0])
    try:
        base_fee = int(str(rpc(url, "eth_getBlockByNumber", ["latest", False])["baseFeePerGas"]), 16)  # type: ignore[index]
        gas_limit = int(str(rpc(url, "eth_getBlockByNumber", ["latest", False])["gasLimit"]), 16)  # type: ignore[index]
        tx_gas = max(SEED_GAS, per_block * SEED_GAS // SEED_PER_TX)
        if tx_gas > gas_limit:
            rpc(url, "evm_setBlockGasLimit", [hex(tx_gas + 1_000_000)])
        off_epoch_height(url)
        rpc(url, "anvil_setCode", [vault, seeder_code])
        rpc(url, "evm_mine", [])
        shown = time.monotonic()
        for first in range(0, count, per_block):
            indices = range(first, min(first + per_block, count))
            accounts = [depositor(i) for i in indices]
            amounts = [amount_of(i) for i in indices]
            data = "0x" + (selector + encode(["address[]", "uint256[]"], [accounts, amounts])).hex()
            _, tx = batch(url, [
                ("anvil_setNextBlockBaseFeePerGas", [hex(base_fee)]),
                ("eth_sendTransaction", [{"from": sender, "to": vault, "data": data, "value": hex(sum(amounts)),
                                          "gas": hex(tx_gas), "maxFeePerGas": hex(MAX_FEE)}]),
            ])  # fmt: skip
            rpc(url, "evm_mine", [])
            receipt: Any = rpc(url, "eth_getTransactionReceipt", [tx])
            if receipt is None or int(receipt["status"], 16) != 1:
                raise RuntimeError(f"seeding accounts {first}.. failed: {receipt}")
            if time.monotonic() - shown > 10:
                say(f"seeded {indices.stop:,} of {count:,} ({time.monotonic() - started:.0f} s)")
                shown = time.monotonic()
        off_epoch_height(url)
        batch(url, [("anvil_setBalance", [a, hex(10**18)]) for a in fund])
        rpc(url, "anvil_setCode", [vault, real])
        rpc(url, "evm_setBlockGasLimit", [hex(gas_limit)])
        rpc(url, "anvil_setNextBlockBaseFeePerGas", [hex(base_fee)])
        rpc(url, "evm_mine", [])
        rpc(url, "anvil_autoImpersonateAccount", [True])
    finally:
        rpc(url, "evm_setIntervalMining", [block_time])
    if str(rpc(url, "eth_getCode", [vault, "latest"])) != real:
        raise RuntimeError("the vault's code was not restored")
    w3 = Web3(Web3.HTTPProvider(url))
    vault_contract = contract(w3, "CollateralVault", vault)
    for i in {0, count // 2, count - 1}:
        if int(vault_contract.functions.collateral(depositor(i)).call()) != amount_of(i):
            raise RuntimeError(f"seeded depositor {i}: the vault does not hold its collateral")
    return time.monotonic() - started
