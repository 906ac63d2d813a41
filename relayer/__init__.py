"""The relay daemon."""
