"""``serp-etl targets check``: the targets file read and checked as a run would, without a run
and without a paid call: both providers' targets, against each provider's own locations and
languages (the warehouse's latest snapshot of them; in sandbox mode, with none yet, the
sandbox's lists), and what is mine (``[[sites]]``, each target's group and allowed domains).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pyarrow.parquet as pq

from serp_etl.core.mode import Mode
from serp_etl.core.targets import TargetConfigError
from serp_etl.core.warehouse import Warehouse
from serp_etl.core.wording import count
from serp_etl.my_sites.config import load_my_sites
from serp_etl.providers.credentials import run_mode
from serp_etl.providers.dataforseo.targets import check_reference, load_targets
from serp_etl.providers.semscraper.targets import check_locations, load_scrapes


def latest_snapshot(warehouse: Warehouse, provider: str, table: str) -> list[dict] | None:
    """The rows of the latest day of a reference table; None if it was never snapshotted."""
    for day in reversed(warehouse.storage.days(provider, table)):
        parts = warehouse.parts(provider, table, day)
        if parts:
            return pq.read_table(str(parts[-1]), filesystem=warehouse.filesystem).to_pylist()
    return None


def _reference(
    warehouse: Warehouse, provider: str, table: str, sandbox_list: Callable[[], list[dict]]
) -> tuple[list[dict] | None, str]:
    rows = latest_snapshot(warehouse, provider, table)
    if rows is not None:
        return rows, f"{provider}_{table} as last snapshotted"
    if run_mode() is Mode.SANDBOX:
        return sandbox_list(), f"the {provider} sandbox's list"
    return None, ""


def _valid(
    load: Callable[[Path], list], path: Path, errors: list[TargetConfigError]
) -> list[tuple[int, object]]:
    """The entries of one provider that are valid themselves, numbered as in the file; the
    problems of the others go to ``errors``."""
    try:
        return list(enumerate(load(path), start=1))
    except TargetConfigError as error:
        errors.append(error)
        return error.valid


def _check(
    check: Callable,
    numbered: list[tuple[int, object]],
    *lists: list[dict],
    path: Path,
    errors: list[TargetConfigError],
) -> None:
    try:
        check([t for _, t in numbered], *lists, str(path), [n for n, _ in numbered])
    except TargetConfigError as error:
        errors.append(error)


def check_targets(path: Path, data_dir: Path) -> list[str]:
    """Lines saying what was checked; ``TargetConfigError`` with every problem of the file, of
    both providers (entries that are valid themselves are still checked against the
    providers' lists)."""
    from serp_etl.sandbox.dataforseo import reference
    from serp_etl.sandbox.semscraper.app import LOCATIONS

    warehouse = Warehouse(data_dir)
    errors: list[TargetConfigError] = []
    images = _valid(load_targets, path, errors)
    keywords = _valid(load_scrapes, path, errors)
    lines = [f"{path}: {len(images)} dataforseo targets, {len(keywords)} semscraper targets"]
    locations, source = _reference(warehouse, "dataforseo", "locations", reference.locations)
    languages, _ = _reference(warehouse, "dataforseo", "languages", reference.languages)
    if images and locations is not None and languages is not None:
        _check(check_reference, images, locations, languages, path=path, errors=errors)
        lines.append(f"dataforseo: locations and languages checked against {source}")
    elif images:
        lines.append(
            "dataforseo: locations and languages not checked: no snapshot yet "
            "(materialize dataforseo/locations and dataforseo/languages, free)"
        )
    offered, source = _reference(
        warehouse,
        "semscraper",
        "locations",
        lambda: [{"location": loc, "language": lang} for loc, lang, _, _ in LOCATIONS],
    )
    if keywords and offered is not None:
        _check(check_locations, keywords, offered, path=path, errors=errors)
        lines.append(f"semscraper: locations and languages checked against {source}")
    elif keywords:
        lines.append(
            "semscraper: locations not checked: no snapshot yet (materialize "
            "semscraper/locations, free)"
        )
    try:
        mine = load_my_sites(path)
    except TargetConfigError as error:
        errors.append(error)
    else:
        lines.append(
            f"my sites: {count(len(mine.groups), 'group')} of sites, "
            f"{count(len(mine.targets), 'target')} of mine, "
            f"{count(len(mine.allowed), 'image')} with allowed domains"
        )
    if errors:
        raise TargetConfigError.joined(errors)
    return lines
