"""The `expertgate` command: main.py parses, one module per command group, context.py opens what a command needs."""
