"""``python -m ihook`` runs the CLI."""

from ihook.cli import main

main()
