"""Live or sandbox: a decision, never a fallback, and one data dir never holds both.

The mode comes from a resource's ``mode`` setting, else ``$SERP_ETL_MODE``. With neither, the
built-in sandbox runs, unless a provider credential is set in the environment: then the user
meant something, and is asked which (a run that silently fell back to the sandbox would publish
made-up SERPs as real ones). The first write to a data dir records its mode in the ledger; a run
of the other mode is refused before any call.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from enum import StrEnum
from pathlib import Path

from serp_etl.state.ledger import open_ledger

MODE_ENV = "SERP_ETL_MODE"


class Mode(StrEnum):
    SANDBOX = "sandbox"
    LIVE = "live"


class ModeError(ValueError):
    """The mode is not decided, is not a mode, or differs from the data dir's."""


def resolve_mode(configured: str | None, credential_vars: Iterable[str]) -> Mode:
    value = configured or os.environ.get(MODE_ENV)
    if value:
        try:
            return Mode(value)
        except ValueError:
            raise ModeError(
                f"{MODE_ENV} (or a resource's mode) must be 'sandbox' or 'live', got {value!r}"
            ) from None
    present = [name for name in credential_vars if os.environ.get(name)]
    if present:
        raise ModeError(
            f"{', '.join(present)} set but {MODE_ENV} is not: set {MODE_ENV}=live "
            f"to use the real APIs, or {MODE_ENV}=sandbox for the built-in ones"
        )
    return Mode.SANDBOX


def claim_mode(data_dir: Path | str, mode: Mode) -> None:
    """Record ``mode`` as the data dir's, or refuse if it already holds the other mode's data."""
    with open_ledger(data_dir) as ledger:
        held = ledger.claim("mode", str(mode))
    if held != mode:
        raise ModeError(
            f"{data_dir} holds {held} data: a {mode} run may not write to it; "
            f"use another data dir (SERP_ETL_DATA_DIR) for {mode} runs"
        )
