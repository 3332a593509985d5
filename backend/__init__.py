"""The expertgate application: HTTP API, CLI, request pipeline, storage and wiring."""
