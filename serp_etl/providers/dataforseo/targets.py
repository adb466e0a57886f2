"""The images to track: ``[[dataforseo]]`` tables in a TOML file the user edits.

    [[dataforseo]]
    image_url = "https://example.com/photo.jpg"   # required, http(s)
    location_code = 2840                           # or location_name = "United States"
    language_code = "en"                           # or language_name = "English"
    priority = 1                                   # optional: 1 normal (default), 2 high
    max_crawl_pages = 1                            # optional: 1 to 100
    calculate_rectangles = false                   # optional: pixel rectangles, double price
    group = "acme"                                 # optional: whose it is (``my_sites``)
    allowed_domains = ["licensee.com"]             # optional: where it may be shown

Each target becomes one task a day. Its tag, the key that finds a posted task again after a
crash, is derived from the partition date and every field above: the same target on the same
date is never posted twice; a changed field is a different task. ``group`` and
``allowed_domains`` say whose the image is (``serp_etl.my_sites.config``): they are left out of
the target, its tag and its task.
"""

from __future__ import annotations

import difflib
import hashlib
from dataclasses import asdict, dataclass
from pathlib import Path

import orjson

from serp_etl.core.targets import (
    TARGETS_FILE,
    TargetConfigError,
    read_targets_file,
    read_toml,
    target_name,
)
from serp_etl.my_sites.config import OWNERSHIP_FIELDS, target_fields
from serp_etl.providers.dataforseo import settings

TAG_PREFIX = "serp-etl"


def tag_prefix(partition: str, scope: str = settings.PROVIDER) -> str:
    """What the tag of every task of the day of the provider instance ``scope`` starts with:
    instances that share an account never take each other's tasks for their own."""
    return f"{TAG_PREFIX}/{scope}/{partition}/"


@dataclass(frozen=True)
class ImageTarget:
    image_url: str
    location_code: int | None = None
    location_name: str | None = None
    language_code: str | None = None
    language_name: str | None = None
    priority: int = 1
    max_crawl_pages: int | None = None
    calculate_rectangles: bool = False

    def fields(self) -> dict:
        """The fields that were set, in task_post's names."""
        return {k: v for k, v in asdict(self).items() if v is not None and v is not False}

    def tag(self, partition: str, scope: str = settings.PROVIDER) -> str:
        digest = hashlib.sha256(orjson.dumps(self.fields(), option=orjson.OPT_SORT_KEYS))
        return f"{tag_prefix(partition, scope)}{digest.hexdigest()[:32]}"

    def task(self, partition: str, scope: str = settings.PROVIDER) -> dict:
        """The task_post body element for this target on ``partition`` (of instance ``scope``)."""
        return {**self.fields(), "tag": self.tag(partition, scope)}

    def price(self) -> float:
        return settings.task_price(
            self.priority, self.max_crawl_pages or 1, self.calculate_rectangles
        )


_TYPES = {
    "image_url": str,
    "location_code": int,
    "location_name": str,
    "language_code": str,
    "language_name": str,
    "priority": int,
    "max_crawl_pages": int,
    "calculate_rectangles": bool,
}


class _Invalid(ValueError):
    """What is wrong with one entry (its name is added by the caller)."""


def _target(entry: object) -> ImageTarget:
    if not isinstance(entry, dict):
        raise _Invalid("expected a table of fields")
    unknown = sorted(set(entry) - set(_TYPES))
    if unknown:
        known = ", ".join([*_TYPES, *sorted(OWNERSHIP_FIELDS[settings.PROVIDER])])
        raise _Invalid(f"unknown field(s) {', '.join(unknown)}; known: {known}")
    for name, value in entry.items():
        if type(value) is not _TYPES[name]:
            raise _Invalid(f"{name} must be {_TYPES[name].__name__}, got {value!r}")
    url = entry.get("image_url")
    if not url or not url.startswith(("http://", "https://")):
        raise _Invalid(f"image_url must be an http(s) URL, got {(url or '')[:80]!r}")
    if len(url) > settings.MAX_IMAGE_URL_CHARS:
        raise _Invalid(
            f"image_url has {len(url)} characters; at most "
            f"{settings.MAX_IMAGE_URL_CHARS} are accepted"
        )
    if ("location_code" in entry) == ("location_name" in entry):
        raise _Invalid("set exactly one of location_code, location_name")
    if ("language_code" in entry) == ("language_name" in entry):
        raise _Invalid("set exactly one of language_code, language_name")
    if entry.get("priority", 1) not in settings.PRICE_PER_PAGE:
        raise _Invalid(f"priority must be 1 (normal) or 2 (high), got {entry['priority']}")
    if not 1 <= entry.get("max_crawl_pages", 1) <= 100:
        raise _Invalid(f"max_crawl_pages must be 1 to 100, got {entry['max_crawl_pages']}")
    return ImageTarget(**entry)


def _name(section: str, number: int, entry: object) -> str:
    return target_name(section, number, entry.get("image_url") if isinstance(entry, dict) else None)


def parse_targets(
    text: str, source: str = TARGETS_FILE, section: str = settings.PROVIDER
) -> list[ImageTarget]:
    """The targets of the file's ``section`` (a provider instance's: ``[[dataforseo]]``,
    ``[[dataforseo_client_b]]``), or ``TargetConfigError`` with every problem found."""
    entries = read_toml(text, source).get(section, [])
    if not isinstance(entries, list):
        raise TargetConfigError(source, [f"use [[{section}]] tables, one per target"])
    valid: list[tuple[int, ImageTarget]] = []
    problems: list[str] = []
    first_seen: dict[ImageTarget, int] = {}
    for number, entry in enumerate(entries, start=1):
        try:
            target = _target(
                target_fields(entry, settings.PROVIDER) if isinstance(entry, dict) else entry
            )
        except _Invalid as error:
            problems.append(f"{_name(section, number, entry)}: {error}")
            continue
        if target in first_seen:
            problems.append(
                f"{_name(section, number, entry)}: duplicate of target #{first_seen[target]}"
            )
            continue
        first_seen[target] = number
        valid.append((number, target))
    if problems:
        raise TargetConfigError(source, problems, valid)
    return [target for _, target in valid]


def load_targets(path: Path, section: str = settings.PROVIDER) -> list[ImageTarget]:
    return parse_targets(read_targets_file(path), str(path), section)


def check_reference(
    targets: list[ImageTarget],
    locations: list[dict],
    languages: list[dict],
    source: str = TARGETS_FILE,
    numbers: list[int] | None = None,
) -> None:
    """Every target's location and language must be one of DataForSEO's own, exactly (a task
    with another is refused at posting, and may still be billed). ``numbers``: the targets'
    numbers in the file, when some were left out."""
    numbers = numbers or list(range(1, len(targets) + 1))
    known = {
        "location_code": {loc.get("location_code") for loc in locations},
        "location_name": {loc.get("location_name") for loc in locations},
        "language_code": {lang.get("language_code") for lang in languages},
        "language_name": {lang.get("language_name") for lang in languages},
    }
    reference = {"location": "dataforseo_locations", "language": "dataforseo_languages"}
    problems = []
    for number, target in zip(numbers, targets, strict=True):
        for field, values in known.items():
            value = getattr(target, field)
            if value is None or value in values:
                continue
            close = difflib.get_close_matches(
                str(value), [str(v) for v in values if v], n=3, cutoff=0.6
            )
            if not close and isinstance(value, str):  # case alone differs
                close = [v for v in values if isinstance(v, str) and v.lower() == value.lower()]
            hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
            problems.append(
                f"{target_name(settings.PROVIDER, number, target.image_url)}: "
                f"{field} {value!r} is not one of DataForSEO's (see "
                f"{reference[field.split('_')[0]]}){hint}"
            )
    if problems:
        raise TargetConfigError(source, problems)
