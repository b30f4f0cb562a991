"""``python -m stylefw`` runs the CLI."""

from .cli import entry

entry()
