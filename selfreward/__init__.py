"""The ``selfreward`` command: inspect what each iteration trained on (see selfreward/cli.py)."""
