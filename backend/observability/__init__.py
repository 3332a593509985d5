"""Operational signals: Prometheus metrics (and, later, logs and traces)."""
