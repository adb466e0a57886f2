"""The images to track: ``[[dataforseo]]`` tables in a TOML file the user edits.

    [[dataforseo]]
    image_url = "https://example.com/photo.jpg"   # required, http(s)
    location_code = 2840                           # or location_name = "United States"
    language_code = "en"                           # or language_name = "English"
    priority = 1                                   # optional: 1 normal (default), 2 high
    max_crawl_pages = 1                            # optional: 1 to 100
    calculate_rectangles = false                   # optional: pixel rectangles, double price

Each target becomes one task a day. Its tag, the key that finds a posted task again after a
crash, is derived from the partition date and every field above: the same target on the same
date is never posted twice; a changed field is a different task.
"""

from __future__ import annotations

import difflib
import hashlib
from dataclasses import asdict, dataclass
from pathlib import Path

import orjson

from serp_etl.core.targets import TARGETS_FILE, TargetConfigError, read_toml
from serp_etl.providers.dataforseo import settings

TAG_PREFIX = "serp-etl"


def tag_prefix(partition: str) -> str:
    """What the tag of every task of the day starts with."""
    return f"{TAG_PREFIX}/{settings.PROVIDER}/{partition}/"


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

    def tag(self, partition: str) -> str:
        digest = hashlib.sha256(orjson.dumps(self.fields(), option=orjson.OPT_SORT_KEYS))
        return f"{tag_prefix(partition)}{digest.hexdigest()[:32]}"

    def task(self, partition: str) -> dict:
        """The task_post body element for this target on ``partition``."""
        return {**self.fields(), "tag": self.tag(partition)}

    def price(self) -> float:
        return settings.task_price(self.priority, self.max_crawl_pages or 1,
                                   self.calculate_rectangles)


_TYPES = {
    "image_url": str, "location_code": int, "location_name": str, "language_code": str,
    "language_name": str, "priority": int, "max_crawl_pages": int, "calculate_rectangles": bool,
}


def _target(entry: object, where: str) -> ImageTarget:
    if not isinstance(entry, dict):
        raise TargetConfigError(f"{where}: expected a table of fields")
    unknown = sorted(set(entry) - set(_TYPES))
    if unknown:
        raise TargetConfigError(f"{where}: unknown field(s) {', '.join(unknown)}; "
                                f"known: {', '.join(_TYPES)}")
    for name, value in entry.items():
        if type(value) is not _TYPES[name]:
            raise TargetConfigError(
                f"{where}: {name} must be {_TYPES[name].__name__}, got {value!r}")
    url = entry.get("image_url")
    if not url or not url.startswith(("http://", "https://")):
        raise TargetConfigError(f"{where}: image_url must be an http(s) URL, got {url[:80]!r}")
    if len(url) > settings.MAX_IMAGE_URL_CHARS:
        raise TargetConfigError(f"{where}: image_url has {len(url)} characters; at most "
                                f"{settings.MAX_IMAGE_URL_CHARS} are accepted")
    if ("location_code" in entry) == ("location_name" in entry):
        raise TargetConfigError(f"{where}: set exactly one of location_code, location_name")
    if ("language_code" in entry) == ("language_name" in entry):
        raise TargetConfigError(f"{where}: set exactly one of language_code, language_name")
    if entry.get("priority", 1) not in settings.PRICE_PER_PAGE:
        raise TargetConfigError(f"{where}: priority must be 1 (normal) or 2 (high), "
                                f"got {entry['priority']}")
    if not 1 <= entry.get("max_crawl_pages", 1) <= 100:
        raise TargetConfigError(f"{where}: max_crawl_pages must be 1 to 100, "
                                f"got {entry['max_crawl_pages']}")
    return ImageTarget(**entry)


def parse_targets(text: str, source: str = TARGETS_FILE) -> list[ImageTarget]:
    document = read_toml(text, source)
    entries = document.get(settings.PROVIDER, [])
    if not isinstance(entries, list):
        raise TargetConfigError(f"{source}: use [[{settings.PROVIDER}]] tables, one per target")
    targets: list[ImageTarget] = []
    first_seen: dict[ImageTarget, int] = {}
    for number, entry in enumerate(entries, start=1):
        where = f"{source}: {settings.PROVIDER} target #{number}"
        target = _target(entry, where)
        if target in first_seen:
            raise TargetConfigError(f"{where}: duplicate of target #{first_seen[target]}")
        first_seen[target] = number
        targets.append(target)
    return targets


def load_targets(path: Path) -> list[ImageTarget]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TargetConfigError(
            f"{path}: no targets file; copy the example data/{TARGETS_FILE} from the repository "
            "and list the images to track") from None
    return parse_targets(text, str(path))


def check_reference(targets: list[ImageTarget], locations: list[dict], languages: list[dict],
                    source: str = TARGETS_FILE) -> None:
    """Every target's location and language must be one of DataForSEO's own, exactly (a task
    with another is refused at posting, and may still be billed)."""
    known = {
        "location_code": {loc.get("location_code") for loc in locations},
        "location_name": {loc.get("location_name") for loc in locations},
        "language_code": {lang.get("language_code") for lang in languages},
        "language_name": {lang.get("language_name") for lang in languages},
    }
    reference = {"location": "dataforseo_locations", "language": "dataforseo_languages"}
    for number, target in enumerate(targets, start=1):
        for field, values in known.items():
            value = getattr(target, field)
            if value is None or value in values:
                continue
            close = difflib.get_close_matches(str(value), [str(v) for v in values if v], n=3,
                                              cutoff=0.6)
            if not close and isinstance(value, str):  # case alone differs
                close = [v for v in values if isinstance(v, str) and v.lower() == value.lower()]
            hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
            raise TargetConfigError(
                f"{source}: {settings.PROVIDER} target #{number}: {field} {value!r} is not "
                f"one of DataForSEO's (see {reference[field.split('_')[0]]}){hint}")
