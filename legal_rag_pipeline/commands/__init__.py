"""Extra `legal-rag` subcommands, one module each.

Each module defines ``register(subparsers)`` that adds its parser and sets
``handler=<function(args, settings) -> exit code>`` with ``parser.set_defaults``. ``cli.py`` finds
them all; a command needing no settings sets ``needs_settings=False``.
"""
