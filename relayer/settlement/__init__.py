"""Settlement: what the destination needs, gas-sized batches, finality, and the pull path for
keepers."""
