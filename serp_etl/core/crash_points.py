"""Named crash points: ``SERP_ETL_CRASH_AT=<name>`` makes the process exit hard right there.

Between paying for a task and storing its result lie several steps; a crash (a SIGKILL, a
lost machine) can land between any two. The tests run the pipeline in a subprocess that dies at
each of these points in turn, then run it again, and check that nothing was paid twice and
nothing fetched was lost. Off (one dict lookup) unless the variable names a point.
"""

from __future__ import annotations

import os

CRASH_AT_ENV = "SERP_ETL_CRASH_AT"
CRASH_EXIT_CODE = 97

POINTS: dict[str, str] = {
    "dataforseo.intents_recorded": "intents are in the ledger, nothing posted yet",
    "dataforseo.posted": "task_post answered, the answer not recorded",
    "dataforseo.posted_recorded": "a posted batch is recorded",
    "dataforseo.fetched": "task_get answered, the response not stored",
    "dataforseo.response_stored": "a response is in the ledger's inbox",
    "semscraper.intents_recorded": "intents are in the ledger, nothing created yet",
    "semscraper.created": "the create call answered, the answer not recorded",
    "semscraper.created_recorded": "a created batch is recorded",
    "semscraper.candidates_recorded": "recovery recorded its candidates, none retrieved yet",
    "semscraper.candidates_retrieved": "recovery retrieved its candidates, none matched yet",
    "semscraper.retrieved": "a retrieve call answered, the SERPs not stored",
    "semscraper.response_stored": "a SERP is in the ledger's inbox",
    "raw.published": "the raw file is published, the inbox not cleared",
}


def crash_point(name: str) -> None:
    """Exit at once, running no cleanup, if ``SERP_ETL_CRASH_AT`` names this point."""
    if name not in POINTS:
        raise KeyError(f"unknown crash point {name!r}")
    if os.environ.get(CRASH_AT_ENV) == name:
        os._exit(CRASH_EXIT_CODE)
