"""Storage: the daemon's one SQLite store (its tables and the transaction manager's, one
connection)."""
