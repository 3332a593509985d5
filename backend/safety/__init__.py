"""Flagged requests: what the input safety check flagged, listed for admins and
auditors, relabelled by admins into training data (issue 23 item 4, docs/safety.md).

The check itself is backend/guard/safety.py; the recorder writes a flag row with the
request's audit event (record.py); service.py reads, counts, labels and exports them;
api.py and cli.py are the adapters.
"""
