"""Subcommands for export (TensorFlow is imported inside commands)."""


def add_commands(commands) -> None:
    """Filled in by the export work."""
