"""The watchtower's tests run on the contract tests' anvil fixtures (tests/contracts/conftest.py)."""

from tests.contracts.conftest import chain_factory, contract_build

__all__ = ["chain_factory", "contract_build"]
