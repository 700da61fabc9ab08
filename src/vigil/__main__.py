"""Allows `python -m vigil`."""

from vigil.cli.app import main

main()
