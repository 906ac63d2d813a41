"""Storage: the daemon's one store (its tables and the transaction manager's, one connection) on
SQLite by default or on PostgreSQL (relayer.storage.database); relayer.storage.lease: the leader
lease with a fencing token on PostgreSQL, for a member run as a hot-standby pair."""
