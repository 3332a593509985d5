"""The per-expert response cache: exact and semantic replay of delivered first-turn
answers (docs/cache.md). ``service.ResponseCache`` is what the chat pipeline calls;
``store`` holds the in-process store, ``redis_store`` the one shared by replicas."""
