"""Thin entry point: ``python cli.py ...`` is ``eai ...``."""

from eai.cli import main

if __name__ == "__main__":
    main()
