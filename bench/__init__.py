"""The benchmark: load scenarios against quartchat and the raw-ASGI ceiling (python -m bench)."""
