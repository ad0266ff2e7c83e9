"""``python -m hsmgate`` runs the command-line interface."""

from hsmgate.cli import main

main()
