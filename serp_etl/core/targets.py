"""What every provider's targets file shares."""

TARGETS_FILE = "targets.toml"


class TargetConfigError(ValueError):
    """The targets file is missing, not TOML, or has an invalid entry (named in the message)."""
