"""Quotas: requests per minute (token bucket) and token budgets per day and month,
for a user, a team and everyone (global).

- :mod:`backend.quota.types`   policies, limits, admissions (frozen values)
- :mod:`backend.quota.bucket`  the token-bucket and budget arithmetic (pure)
- :mod:`backend.quota.memory`  the in-process limiter (embedded default)
- :mod:`backend.quota.redis_limiter` the Redis limiter: one atomic Lua script per admission,
                               so several API processes share the limits exactly
- :mod:`backend.quota.failsafe` what happens when the store errors: fail-open or closed
"""
