"""Input/output guard: PII detection and redaction, and the per-expert PII policy.

Framework-free (standard library only): :mod:`pii` finds and replaces personal data
and secrets; :mod:`policy` applies an expert's ``pii`` policy (redact, allow, block)
to what is sent to its endpoint, and redacts text for the audit log; :mod:`logfilter`
redacts log records. It lives under backend because only backend wires it (experts
sees just the ``OutboundFilter`` protocol it implements), and it imports nothing of
the web or SQL stack, so its tests and benchmarks run without either.
"""
