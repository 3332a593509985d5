"""The tamper-evident audit trail: one hash-chained event per request and admin action.

Modules:

- :mod:`record`     the event's fields, listed once; every other form reuses them
- :mod:`canonical`  canonical JSON (the exact bytes that are hashed)
- :mod:`chain`      the hash chain itself: keys, content digests, event hashes (pure)
- :mod:`types`      frozen values: Actor, AuditEntry, AuditFilter, VerifyReport
- :mod:`writer`     AuditTrail: writes events to the outbox in the caller's transaction
- :mod:`chainer`    moves outbox rows into the chain in batches, under the head lock
- :mod:`keyfile`    the chain key file made on first start when no secret key is set
- :mod:`rows`       decodes stored rows without trusting them (corrupted rows marked)
- :mod:`verify`     walks the chain and names the first bad sequence number (a kind)
- :mod:`anchors`    signed chain heads kept outside the database, checked by verify
- :mod:`restricted` withholds text of answers built from documents a reader cannot see
- :mod:`query`      filters, cursor pages and streamed reads for the API and exports
- :mod:`export`     JSON Lines / CSV rendering of streamed events
- :mod:`retention`  drops old prompt/answer text, leaving the chain verifiable
- :mod:`api`, :mod:`schemas`, :mod:`cli`  the thin adapters

See docs/governance.md for the design and its guarantees.
"""
