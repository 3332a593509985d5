"""Expert health for operators: circuit breaker state over the admin API."""
