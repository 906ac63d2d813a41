"""Settlement: what the destination needs, gas-sized batches, finality (the pull path for
keepers is `relayer.pullpath`)."""
