"""Storage: the daemon's one SQLite store (its tables and the transaction manager's, one
connection); relayer.storage.lease: the leader lease with a fencing token on PostgreSQL, for a
member run as a hot-standby pair (not wired into the daemon yet)."""
