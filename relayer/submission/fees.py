"""EIP-1559 fee math of the transaction manager (relayer.submission.txmanager): the market's fees,
a replacement's (raised by at least geth's price bump, at least the market, under a cap)."""

from __future__ import annotations

import math
from dataclasses import dataclass

MIN_FEE_BUMP_PERCENT = 10.0
"""Geth's txpool `PriceBump` default: a replacement must raise both fees by at least 10%."""

FEE_CEILING_MULTIPLE = 2
"""A replacement's maxFeePerGas stays at or below this multiple of the market's (2 x base fee
+ tip of the pending block, `market_fees`): more is not what the base fee justifies."""


@dataclass(frozen=True, slots=True)
class Fees:
    """EIP-1559 fee fields in wei."""

    max_fee_per_gas: int
    max_priority_fee_per_gas: int


def bumped(value: int, percent: float) -> int:
    """`value` raised by `percent`, rounded up, and strictly greater than `value` (wei)."""
    basis_points = math.ceil(percent * 100)
    return max(value + 1, -(-value * (10_000 + basis_points) // 10_000))


def market_fees(base_fee: int, tip: int, cap: int) -> Fees:
    """EIP-1559 fees for the current market: maxFee = 2 * baseFee + tip, both capped at `cap` (wei)."""
    tip = min(tip, cap)
    return Fees(min(2 * base_fee + tip, cap), tip)


def replacement_fees(previous: Fees, market: Fees, *, percent: float, cap: int) -> Fees | None:
    """Fees of a replacement: each of maxFee and tip raised by >= `percent` over `previous`, and at
    least `market`; maxFee limited to `cap`. None when even the minimum bump exceeds the cap
    (a replacement at the cap would be refused by the node as underpriced)."""
    floor_max = bumped(previous.max_fee_per_gas, percent)
    floor_tip = bumped(previous.max_priority_fee_per_gas, percent)
    if floor_max > cap or floor_tip > cap:
        return None
    max_fee = min(max(floor_max, market.max_fee_per_gas), cap)
    tip = min(max(floor_tip, market.max_priority_fee_per_gas), max_fee)
    return Fees(max_fee, tip)
