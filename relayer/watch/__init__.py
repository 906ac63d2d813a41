"""The watchtower (`relayer watch`, DESIGN sections 2 and 9): re-proves every block leaf and claim the
destination counted against its own source endpoints and challenges a lie on-chain.

One module per concern: `evidence` (what was settled, from the destination's calldata or a call
trace), `verdict` (re-proving against the source), `challenge` (the challenge transaction or the
alert), `follow` (reading the destination, holding what cannot be judged, reorgs), `store` (its own
SQLite file). The process around them (clients, health endpoints, the poll loop) is relayer.watchtower.
"""
