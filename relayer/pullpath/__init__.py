"""The pull path (DESIGN section 6): the keeper API on its own listener. `proofs` builds an
account's answers from the store's index (relayer.storage.claimindex), `calldata` encodes their
ready-made calls, `ratelimit` keeps one client from taking the daemon's time, `server` is the
route and its handler."""
