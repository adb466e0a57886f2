"""The keywords to track: ``[[semscraper]]`` tables in the same targets file.

    [[semscraper]]
    keyword = "example keyword"     # required
    location = "fr"                 # required: a location code of GET /serp/google/location
    language = "fr"                 # required: that location's language
    device = "desktop"              # optional: desktop (default) or mobile
    depth = 1                       # optional: 1 (about 10 results) to 10 (about 100)
    priority = 1                    # optional: 1 to 10, higher first
    geolocation = "Paris, France"   # optional: city, department or country

Each target becomes one scrape a day; its key (date + every field above) keeps it from being
scraped twice on a date.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from serp_etl.core.targets import TARGETS_FILE, TargetConfigError, read_toml
from serp_etl.providers.semscraper.client import InvalidScrape, Scrape
from serp_etl.providers.semscraper.settings import PROVIDER

_FIELDS = {"keyword", "location", "language", "device", "depth", "priority", "geolocation"}


def parse_scrapes(text: str, source: str) -> list[Scrape]:
    entries = read_toml(text, source).get(PROVIDER, [])
    if not isinstance(entries, list):
        raise TargetConfigError(f"{source}: use [[{PROVIDER}]] tables, one per keyword")
    scrapes: list[Scrape] = []
    for number, entry in enumerate(entries, start=1):
        where = f"{source}: {PROVIDER} target #{number}"
        if not isinstance(entry, dict):
            raise TargetConfigError(f"{where}: expected a table of fields")
        unknown = sorted(set(entry) - _FIELDS)
        if unknown:
            raise TargetConfigError(f"{where}: unknown field(s) {', '.join(unknown)}")
        try:
            scrape = Scrape(**entry)
        except (InvalidScrape, TypeError) as error:
            raise TargetConfigError(f"{where}: {error}") from None
        same = [n for n, other in enumerate(scrapes, start=1) if _query(other) == _query(scrape)]
        if same:
            raise TargetConfigError(
                f"{where} ({scrape.keyword!r}): duplicate of target #{same[0]} "
                f"({scrapes[same[0] - 1].keyword!r}): Google answers the same query whatever "
                "the case and the spaces, and each would be billed")
        scrapes.append(scrape)
    return scrapes


def _query(scrape: Scrape) -> Scrape:
    """What Google is asked: the keyword without case and extra spaces (the rest as is)."""
    return replace(scrape, keyword=" ".join(scrape.keyword.split()).casefold())


def load_scrapes(path: Path) -> list[Scrape]:
    try:
        return parse_scrapes(path.read_text(encoding="utf-8"), str(path))
    except FileNotFoundError:
        raise TargetConfigError(f"{path}: no targets file") from None


def check_locations(scrapes: list[Scrape], locations: list[dict],
                    source: str = TARGETS_FILE) -> None:
    """Every target's (location, language) must be one the API offers."""
    offered = {(entry.get("location"), entry.get("language")) for entry in locations}
    for number, scrape in enumerate(scrapes, start=1):
        if (scrape.location, scrape.language) not in offered:
            # The valid choices for this target: where its language is offered, and what its
            # location offers (never a location that lacks the language).
            where = sorted({loc for loc, lang in offered if lang == scrape.language and loc})
            speaks = sorted({lang for loc, lang in offered if loc == scrape.location and lang})
            target = f"{source}: {PROVIDER} target #{number} ({scrape.keyword!r})"
            hint = _case_hint(scrape, offered)
            if not speaks:
                raise TargetConfigError(
                    f"{target}: {scrape.location!r} is not a location {PROVIDER} offers{hint}"
                    f" (serp-etl targets check lists what is wrong; {PROVIDER}/locations "
                    "holds every location)")
            raise TargetConfigError(
                f"{target}: location {scrape.location!r} with language {scrape.language!r} "
                f"is not offered by {PROVIDER}{hint}; language {scrape.language!r} is offered "
                f"at: {', '.join(where) or 'no location'}; location {scrape.location!r} "
                f"offers: {', '.join(speaks)}")


def _case_hint(scrape: Scrape, offered: set[tuple[str, str]]) -> str:
    """A hint when the codes are offered in lower case (``US``/``EN`` for ``us``/``en``)."""
    lower = (scrape.location.lower(), scrape.language.lower())
    if lower != (scrape.location, scrape.language) and lower in offered:
        return f" (codes are lower case: location = {lower[0]!r}, language = {lower[1]!r})"
    return ""
