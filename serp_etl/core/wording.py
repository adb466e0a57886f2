"""How counts read in what users see (logs, metadata, the CLI)."""


def count(n: int, noun: str) -> str:
    """``1 file``, ``2 files``."""
    return f"{n} {noun}{'' if n == 1 else 's'}"
