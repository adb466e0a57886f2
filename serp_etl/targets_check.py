"""``serp-etl targets check``: the targets file read and checked as a run would, without a run
and without a paid call: both providers' targets, against each provider's own locations and
languages (the warehouse's latest snapshot of them; in sandbox mode, with none yet, the
sandbox's lists), and what is mine (``[[sites]]``, each target's group and allowed domains).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

from serp_etl.core.mode import Mode
from serp_etl.core.parquet import read_part
from serp_etl.core.targets import TargetConfigError, read_targets_file, read_toml
from serp_etl.core.warehouse import Warehouse
from serp_etl.core.wording import count
from serp_etl.my_sites.config import load_my_sites
from serp_etl.providers.credentials import run_mode
from serp_etl.providers.dataforseo.settings import PROVIDER as DATAFORSEO
from serp_etl.providers.dataforseo.targets import check_reference, load_targets
from serp_etl.providers.instances import provider_of
from serp_etl.providers.semscraper.settings import PROVIDER as SEMSCRAPER
from serp_etl.providers.semscraper.targets import check_locations, load_scrapes


def latest_snapshot(warehouse: Warehouse, provider: str, table: str) -> list[dict] | None:
    """The rows of the latest day of a reference table; None if it was never snapshotted."""
    for day in reversed(warehouse.storage.days(provider, table)):
        parts = warehouse.parts(provider, table, day)
        if parts:
            return read_part(parts[-1], filesystem=warehouse.filesystem).to_pylist()
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


def _sections(path: Path) -> list[str]:
    """The provider instances whose targets the file holds: the default ones, then every
    other section named after a provider (``[[dataforseo_client_b]]``)."""
    defaults = [DATAFORSEO, SEMSCRAPER]
    try:
        document = read_toml(read_targets_file(path), str(path))
    except TargetConfigError:  # each loader below says what is wrong with the file
        return defaults
    return [*defaults, *sorted(key for key in document if provider_of(key) and key not in defaults)]


def check_targets(path: Path, data_dir: Path) -> list[str]:
    """Lines saying what was checked; ``TargetConfigError`` with every problem of the file, of
    every provider instance's section (entries that are valid themselves are still checked
    against the providers' lists)."""
    from serp_etl.sandbox.dataforseo import reference
    from serp_etl.sandbox.semscraper.app import LOCATIONS

    warehouse = Warehouse(data_dir)
    errors: list[TargetConfigError] = []
    found: dict[str, list[tuple[int, object]]] = {}
    for section in _sections(path):
        load = load_targets if provider_of(section) == DATAFORSEO else load_scrapes
        found[section] = _valid(functools.partial(load, section=section), path, errors)
    images = [t for s, ts in found.items() if provider_of(s) == DATAFORSEO for t in ts]
    keywords = [t for s, ts in found.items() if provider_of(s) == SEMSCRAPER for t in ts]
    lines = [
        f"{path}: {len(found[DATAFORSEO])} dataforseo targets, "
        f"{len(found[SEMSCRAPER])} semscraper targets"
    ]
    lines += [
        f"{section}: {count(len(targets), 'target')}"
        for section, targets in found.items()
        if section not in (DATAFORSEO, SEMSCRAPER)
    ]
    locations, source = _reference(warehouse, DATAFORSEO, "locations", reference.locations)
    languages, _ = _reference(warehouse, DATAFORSEO, "languages", reference.languages)
    for section, targets in found.items():
        if (
            provider_of(section) == DATAFORSEO
            and targets
            and locations is not None
            and languages is not None
        ):
            _check(check_reference, targets, locations, languages, path=path, errors=errors)
    if images and locations is not None and languages is not None:
        lines.append(f"dataforseo: locations and languages checked against {source}")
    elif images:
        lines.append(
            "dataforseo: locations and languages not checked: no snapshot yet "
            "(materialize dataforseo/locations and dataforseo/languages, free)"
        )
    offered, source = _reference(
        warehouse,
        SEMSCRAPER,
        "locations",
        lambda: [{"location": loc, "language": lang} for loc, lang, _, _ in LOCATIONS],
    )
    for section, targets in found.items():
        if provider_of(section) == SEMSCRAPER and targets and offered is not None:
            _check(check_locations, targets, offered, path=path, errors=errors)
    if keywords and offered is not None:
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
