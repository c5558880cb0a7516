"""Subcommands for the board side: run, simulate, record."""


def add_commands(commands) -> None:
    """Filled in by the live-side work."""
