"""The gate: which expert answers a request, and why.

Framework-free. Public API: :class:`router.service.Router` (route one request, or many),
the values in :mod:`router.types`, and the encoder adapter in :mod:`router.encoder`.
"""
