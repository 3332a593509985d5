"""The chat capability: OpenAI-compatible API, the request pipeline, conversations."""
