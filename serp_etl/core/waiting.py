"""Waiting for results, said out loud: a run that polls for minutes logs where it stands at
least every ``PROGRESS_EVERY`` seconds (in the Dagster UI, through the instance's managed
``serp_etl`` logger), instead of sitting silent until its deadline."""

from __future__ import annotations

import logging
from collections.abc import Callable

PROGRESS_EVERY = 30.0


def wait(
    seconds: float, sleep: Callable[[float], None], where: Callable[[], str], log: logging.Logger
) -> None:
    """Sleep ``seconds``, in pieces of at most ``PROGRESS_EVERY``, each after a line saying
    ``where()`` the run stands."""
    while seconds > 0:
        piece = min(seconds, PROGRESS_EVERY)
        log.info("%s; next look in %.0f s", where(), piece)
        sleep(piece)
        seconds -= piece
