"""What every provider's targets file shares."""

import tomllib

TARGETS_FILE = "targets.toml"


class TargetConfigError(ValueError):
    """The targets file is missing, not TOML, or has an invalid entry (named in the message)."""


def read_toml(text: str, source: str) -> dict:
    """The targets file's document, or one line saying why it is not one."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise TargetConfigError(f"{source}: not valid TOML: {error}") from None
    except RecursionError:
        # tomllib recurses once per nesting level: thousands of nested arrays exhaust it.
        raise TargetConfigError(f"{source}: not a targets file: nested too deeply") from None
