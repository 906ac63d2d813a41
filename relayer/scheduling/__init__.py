"""Scheduling: the chains' watchers, the pairs and their depositors, and the deterministic epoch
rule."""
