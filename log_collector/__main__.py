"""``python -m log_collector`` runs the command line."""

from .cli import main

main()
