"""Per-expert capacity: a hard bound on the requests in flight on each expert (and on
each of its endpoint replicas), shared exactly by every API process.

- :mod:`backend.capacity.types`   pools (what may be held), slots (what is held), errors
- :mod:`backend.capacity.local`   the in-process store (embedded default)
- :mod:`backend.capacity.redis_store` the Redis store: one Lua script per acquisition
- :mod:`backend.capacity.service` admission: acquire for the routed expert or overflow
                                  to the next candidate of the router's overflow rule
"""
