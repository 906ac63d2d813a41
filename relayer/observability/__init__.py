"""Observability: metrics, logs, the HTTP API and systemd notifications."""
