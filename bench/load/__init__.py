"""Load benchmark: expertgate vs LiteLLM proxy in front of a C stub backend (see run.py)."""
