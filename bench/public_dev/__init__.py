"""The public dev set for the routing gate (bench/router_public_dev.py is its command)."""
