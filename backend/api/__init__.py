"""The web layer: every HTTP route, and the typed dependencies they take (deps.py)."""
