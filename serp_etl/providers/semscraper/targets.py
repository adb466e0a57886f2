"""The keywords to track: ``[[semscraper]]`` tables in the same targets file.

    [[semscraper]]
    keyword = "example keyword"     # required
    location = "fr"                 # required: a location code of GET /serp/google/location
    language = "fr"                 # required: that location's language
    device = "desktop"              # optional: desktop (default) or mobile
    depth = 1                       # optional: 1 (about 10 results) to 10 (about 100)
    priority = 1                    # optional: 1 to 10, higher first
    geolocation = "Paris, France"   # optional: city, department or country
    group = "acme"                  # optional: whose it is (``my_sites``; not part of the key)

Each target becomes one scrape a day; its key (date + every field above but ``group``) keeps it
from being scraped twice on a date.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from serp_etl.core.targets import (
    TARGETS_FILE,
    TargetConfigError,
    read_targets_file,
    read_toml,
    target_name,
)
from serp_etl.my_sites.config import target_fields
from serp_etl.providers.semscraper.client import InvalidScrape, Scrape
from serp_etl.providers.semscraper.settings import PROVIDER

_FIELDS = {"keyword", "location", "language", "device", "depth", "priority", "geolocation"}


def parse_scrapes(text: str, source: str, section: str = PROVIDER) -> list[Scrape]:
    """The keywords of the file's ``section`` (a provider instance's: ``[[semscraper]]``,
    ``[[semscraper_client_b]]``), or ``TargetConfigError`` with every problem found."""
    entries = read_toml(text, source).get(section, [])
    if not isinstance(entries, list):
        raise TargetConfigError(source, [f"use [[{section}]] tables, one per keyword"])
    valid: list[tuple[int, Scrape]] = []
    problems: list[str] = []
    for number, entry in enumerate(entries, start=1):
        name = target_name(
            section, number, entry.get("keyword") if isinstance(entry, dict) else None
        )
        if not isinstance(entry, dict):
            problems.append(f"{name}: expected a table of fields")
            continue
        entry = target_fields(entry, PROVIDER)
        unknown = sorted(set(entry) - _FIELDS)
        if unknown:
            problems.append(f"{name}: unknown field(s) {', '.join(unknown)}")
            continue
        try:
            scrape = Scrape(**entry)
        except (InvalidScrape, TypeError) as error:
            problems.append(f"{name}: {error}")
            continue
        same = [(n, other) for n, other in valid if _query(other) == _query(scrape)]
        if same:
            first, other = same[0]
            problems.append(
                f"{name}: duplicate of target #{first} ({other.keyword!r}): Google answers the "
                "same query whatever the case and the spaces, and each would be billed"
            )
            continue
        valid.append((number, scrape))
    if problems:
        raise TargetConfigError(source, problems, valid)
    return [scrape for _, scrape in valid]


def _query(scrape: Scrape) -> Scrape:
    """What Google is asked: the keyword without case and extra spaces (the rest as is)."""
    return replace(scrape, keyword=" ".join(scrape.keyword.split()).casefold())


def load_scrapes(path: Path, section: str = PROVIDER) -> list[Scrape]:
    return parse_scrapes(read_targets_file(path), str(path), section)


def check_locations(
    scrapes: list[Scrape],
    locations: list[dict],
    source: str = TARGETS_FILE,
    numbers: list[int] | None = None,
) -> None:
    """Every target's (location, language) must be one the API offers. ``numbers``: the
    targets' numbers in the file, when some were left out."""
    offered = {(entry.get("location"), entry.get("language")) for entry in locations}
    problems = []
    for number, scrape in zip(numbers or range(1, len(scrapes) + 1), scrapes, strict=True):
        if (scrape.location, scrape.language) in offered:
            continue
        # The valid choices for this target: where its language is offered, and what its
        # location offers (never a location that lacks the language).
        where = sorted({loc for loc, lang in offered if lang == scrape.language and loc})
        speaks = sorted({lang for loc, lang in offered if loc == scrape.location and lang})
        target = target_name(PROVIDER, number, scrape.keyword)
        hint = _case_hint(scrape, offered)
        if not speaks:
            problems.append(
                f"{target}: {scrape.location!r} is not a location {PROVIDER} "
                f"offers{hint} ({PROVIDER}/locations holds every location)"
            )
            continue
        problems.append(
            f"{target}: location {scrape.location!r} with language {scrape.language!r} is not "
            f"offered by {PROVIDER}{hint}; language {scrape.language!r} is offered at: "
            f"{', '.join(where) or 'no location'}; location {scrape.location!r} offers: "
            f"{', '.join(speaks)}"
        )
    if problems:
        raise TargetConfigError(source, problems)


def _case_hint(scrape: Scrape, offered: set[tuple[object, object]]) -> str:
    """A hint when the codes are offered in lower case (``US``/``EN`` for ``us``/``en``)."""
    lower = (scrape.location.lower(), scrape.language.lower())
    if lower != (scrape.location, scrape.language) and lower in offered:
        return f" (codes are lower case: location = {lower[0]!r}, language = {lower[1]!r})"
    return ""
