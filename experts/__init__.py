"""Domain experts: the registry (experts.yaml), the one LLM adapter, and answering.

Framework-free: takes and returns the typed values in :mod:`experts.types`.
"""
