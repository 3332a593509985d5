"""The caller's conversation history: list, read and delete (``/api/v1/conversations``)."""
