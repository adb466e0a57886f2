"""Deterministic, realistic Google Search-by-Image results for the sandbox.

The same (image_url, location, language, date) always gives the same SERP. Across a day's
results every documented field of organic and images items appears, every nested element
included; so do nulls, unicode and the occasional empty SERP (40102). With ``drift``, also an
item type the reference does not document and an unknown field in a known item, as the live
API sends when it changes (``SERP_ETL_SANDBOX_DRIFT=1``; off by default, so that a first run
passes every check).
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from serp_etl.sandbox.dataforseo import reference


def digest_of(text: str) -> int:
    """A number drawn from ``text`` alone (not from the generator's random stream)."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=4).digest(), "big")


DOMAINS = [
    "www.amazon.com",
    "www.etsy.com",
    "www.pinterest.com",
    "www.redbubble.com",
    "unsplash.com",
    "www.shutterstock.com",
    "www.wikipedia.org",
    "de.wikipedia.org",
    "www.reddit.com",
    "www.flickr.com",
    "www.ebay.de",
    "www.zalando.fr",
    "www.ikea.com",
    "www.behance.net",
    "www.deviantart.com",
    "www.rakuten.co.jp",
    "www.wayfair.com",
    "www.instagram.com",
    "twitter.com",
    "www.youtube.com",
    "www.houzz.com",
    "www.muji.com",
]
WORDS = [
    "tropical",
    "flower",
    "wallpaper",
    "mural",
    "botanical",
    "print",
    "poster",
    "canvas",
    "jungle",
    "leaves",
    "art",
    "décor",
    "modern",
    "vintage",
    "Blumen",
    "Tapete",
    "feuilles",
    "été",
    "naïve",
    "花",
    "壁紙",
    "植物",
    "🌺",
    "🌴",
    "minimal",
    "abstract",
    "golden",
    "bloom",
    "watercolor",
    "framed",
    "handmade",
    "interior",
    "living room",
    "photo",
    "stock",
]
_LOCATION_CODES = {loc["location_name"]: loc["location_code"] for loc in reference.locations()}
_LANGUAGE_CODES = {lang["language_name"]: lang["language_code"] for lang in reference.languages()}
SOURCES = ["Wikipedia", "Amazon", "Etsy", "Pinterest", None]
CURRENCIES = ["USD", "EUR", "GBP", "JPY"]
RATING_TYPES = ["Max5", "Percents", "CustomMax"]
_OFFSETS = ["+00:00", "+00:00", "+02:00", "+00:00", "-05:00", "+00:00", "+05:30"]
PAGES_PER_TARGET = 40
SPELL_TYPES = [
    "did_you_mean",
    "showing_results_for",
    "no_results_found_for",
    "including_results_for",
]


def seed_for(*parts: object) -> int:
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big")


def is_empty_serp(image_url: str, location: object, language: object, day: str) -> bool:
    """About one SERP in fifteen has no results (status 40102)."""
    return seed_for("empty", image_url, location, language, day) % 15 == 0


class _Serp:
    def __init__(self, rng: random.Random, rectangles: bool) -> None:
        self.rng = rng
        self.rectangles = rectangles

    def chance(self, p: float) -> bool:
        return self.rng.random() < p

    def words(self, low: int, high: int) -> str:
        return " ".join(self.rng.choice(WORDS) for _ in range(self.rng.randint(low, high)))

    def title(self) -> str:
        return self.words(3, 9).capitalize()

    def url(self, domain: str) -> str:
        slug = quote(self.words(2, 4).replace(" ", "-"), safe="-")
        return f"https://{domain}/{slug}/{self.rng.randint(1000, 999999)}"

    def thumbnail(self) -> str:
        token = "".join(
            self.rng.choice("abcdefghijklmnopqrstuvwxyzABCDEFGH0123456789_-") for _ in range(40)
        )
        return f"https://encrypted-tbn{self.rng.randint(0, 3)}.gstatic.com/images?q=tbn:{token}"

    def maybe(self, value, p: float = 0.7):
        return value if self.chance(p) else None

    def rectangle(self, y: float) -> dict | None:
        if not self.rectangles:
            return None
        return {
            "x": round(self.rng.uniform(100, 200), 1),
            "y": round(y, 1),
            "width": round(self.rng.uniform(400, 650), 1),
            "height": round(self.rng.uniform(60, 220), 1),
        }

    def image_element(self, domain: str, alt: bool = True) -> dict:
        return {
            "type": "images_element",
            "alt": self.words(2, 6) if alt else None,
            "url": self.url(domain),
            "image_url": self.thumbnail(),
        }

    def rating(self) -> dict | None:
        if not self.chance(0.3):
            return None
        kind = self.rng.choice(RATING_TYPES)
        top = {"Max5": 5, "Percents": 100, "CustomMax": 10}[kind]
        value = round(self.rng.uniform(top * 0.4, top), 1)
        # The live API sends whole ratings as integers: floats must accept them.
        return {
            "rating_type": kind,
            "value": int(value) if value.is_integer() else value,
            "votes_count": self.rng.randint(0, 25000),
            "rating_max": top,
        }

    def price(self) -> dict | None:
        if not self.chance(0.3):
            return None
        current = round(self.rng.uniform(3, 900), 2)
        is_range = self.chance(0.35)
        return {
            "current": current,
            "regular": self.maybe(round(current * 1.25, 2), 0.4),
            "max_value": round(current * 1.6, 2) if is_range else None,
            "currency": self.rng.choice(CURRENCIES),
            "is_price_range": is_range,
            "displayed_price": f"${current:,.2f}",
        }

    def about_this_result(self, url: str) -> dict | None:
        if not self.chance(0.25):
            return None
        return {
            "type": "about_this_result_element",
            "url": url,
            "source": self.rng.choice(SOURCES),
            "source_info": self.maybe(self.words(8, 20), 0.85),
            "source_url": self.maybe(f"https://en.wikipedia.org/wiki/{self.words(1, 1)}"),
            "language": self.rng.choice(["English", "Deutsch", "Français", "日本語"]),
            "location": self.rng.choice(["United States", "Germany", "France", "Japan"]),
            "search_terms": [self.words(1, 2) for _ in range(self.rng.randint(1, 3))],
            "related_terms": self.maybe([self.words(1, 2) for _ in range(2)]),
        }

    def timestamp(self) -> str | None:
        if not self.chance(0.3):
            return None
        year, month, day = (
            self.rng.randint(18, 26),
            self.rng.randint(1, 12),
            self.rng.randint(1, 28),
        )
        hour, minute = self.rng.randint(0, 23), self.rng.randint(0, 59)
        # The page says UTC; pages' own publication times come with their local offset too.
        # (Chosen from the draws above: one more draw would change every SERP after it.)
        offset = _OFFSETS[(day + hour + minute) % len(_OFFSETS)]
        return f"20{year}-{month:02d}-{day:02d} {hour:02d}:{minute:02d}:00 {offset}"

    def snippet_fields(self, domain: str, url: str) -> dict:
        description = self.maybe(self.words(10, 30), 0.8)
        return {
            "xpath": f"/html[1]/body[1]/div[{self.rng.randint(1, 9)}]/div[1]",
            "domain": domain,
            "title": self.title(),
            "url": url,
            "cache_url": self.maybe(f"https://webcache.googleusercontent.com/search?q={url}", 0.2),
            "related_search_url": self.maybe(
                f"https://www.google.com/search?q=related:{domain}", 0.2
            ),
            "breadcrumb": self.maybe(f"https://{domain} › {self.words(1, 2)}", 0.6),
            "is_image": self.chance(0.8),
            "is_video": self.chance(0.1),
            "description": description,
            # Dates in pre_snippet are text, not timestamps: a trap for type inference.
            "pre_snippet": self.maybe(f"{self.rng.randint(1, 28)} mars 2025 —", 0.2),
            "extended_snippet": self.maybe(self.words(4, 10), 0.15),
            "images": [
                self.image_element(domain, self.chance(0.5)) for _ in range(self.rng.randint(1, 3))
            ]
            if self.chance(0.8)
            else None,
            "amp_version": self.chance(0.1),
            "rating": self.rating(),
            "price": self.price(),
            "highlighted": self.maybe([self.rng.choice(WORDS) for _ in range(2)], 0.4),
        }

    def organic(
        self, rank_group: int, rank_absolute: int, y: float, page: tuple[str, str] | None = None
    ) -> dict:
        domain, url = page or (domain := self.rng.choice(DOMAINS), self.url(domain))
        item: dict[str, Any] = {
            "type": "organic",
            "rank_group": rank_group,
            "rank_absolute": rank_absolute,
            "position": "left" if self.chance(0.95) else "right",
        }
        item.update(self.snippet_fields(domain, url))
        if item["price"] and digest_of(url) % 2 == 0:
            # A shopping result: the real API puts the shop's price label where the domain
            # goes ("$43.35* • Amazon", in the reference example). Chosen from the URL, not
            # drawn: one more draw would change every SERP after it.
            item["domain"] = (
                f"{item['price']['displayed_price']}* • {domain.split('.')[-2].capitalize()}"
            )
        item.update(
            {
                "website_name": self.maybe(domain.split(".")[-2].capitalize(), 0.5),
                "is_featured_snippet": self.chance(0.05),
                "is_malicious": self.chance(0.02),
                "is_web_story": self.chance(0.05),
                "links": [
                    {
                        "type": "link_element",
                        "title": self.title(),
                        "description": self.maybe(self.words(5, 12)),
                        "url": self.url(domain),
                        "domain": domain,
                    }
                    for _ in range(self.rng.randint(2, 4))
                ]
                if self.chance(0.2)
                else None,
                "faq": {
                    "type": "faq_box",
                    "items": [
                        {
                            "type": "faq_box_element",
                            "title": self.words(4, 8).capitalize() + "?",
                            "description": self.words(10, 25),
                            "links": [
                                {
                                    "type": "link_element",
                                    "title": self.title(),
                                    "url": self.url(domain),
                                    "domain": domain,
                                }
                                for _ in range(self.rng.randint(1, 2))
                            ]
                            if self.chance(0.5)
                            else None,
                        }
                        for _ in range(self.rng.randint(1, 3))
                    ],
                }
                if self.chance(0.12)
                else None,
                "extended_people_also_search": self.maybe(
                    [self.words(2, 4) for _ in range(4)], 0.1
                ),
                "about_this_result": self.about_this_result(url),
                "related_result": [
                    self.related_result(domain) for _ in range(self.rng.randint(1, 2))
                ]
                if self.chance(0.2)
                else None,
                "timestamp": self.timestamp(),
                "rectangle": self.rectangle(y),
            }
        )
        # The item order of the live API, not alphabetical: keep "rectangle" last.
        return item

    def related_result(self, domain: str) -> dict:
        item: dict[str, Any] = {"type": "related_result"}
        item.update(self.snippet_fields(domain, self.url(domain)))
        item["about_this_result"] = self.about_this_result(item["url"])
        item["timestamp"] = self.timestamp()
        return item

    def images(self, rank_group: int, rank_absolute: int, y: float) -> dict:
        domain = self.rng.choice(DOMAINS)
        return {
            "type": "images",
            "rank_group": rank_group,
            "rank_absolute": rank_absolute,
            "position": "left",
            "xpath": self.maybe("/html[1]/body[1]/div[6]/div[2]", 0.5),
            "title": self.title(),
            "url": self.maybe(self.url(domain), 0.3),
            "items": [
                self.image_element(self.rng.choice(DOMAINS)) for _ in range(self.rng.randint(2, 6))
            ],
            "related_image_searches": [
                {
                    "type": "related_image_searches_element",
                    "title": self.words(1, 3),
                    "alt": self.maybe(self.words(2, 5)),
                    "url": self.url(domain),
                    "image_url": self.thumbnail(),
                }
                for _ in range(self.rng.randint(2, 5))
            ]
            if self.chance(0.6)
            else None,
            "rectangle": self.rectangle(y),
        }


def ranked_pages(
    rng: random.Random,
    domains: list[str],
    *target: object,
    page_url: Callable[[random.Random, str], str] | None = None,
) -> list[tuple[str, str]]:
    """The pages (domain, URL) that show a target, in the day's order: each target has its
    own pages, each page a strength, and a day's order is by strength plus the day's noise
    (``rng``). So from one day to the next most pages stay and move a few places, a few come
    and go: the history a rank tracker shows. ``page_url``: a page's URL on a domain, drawn
    from the target's own stream (default: a few random words)."""
    pages_rng = random.Random(seed_for("pages", *target))
    maker = _Serp(pages_rng, False)
    page_url = page_url or (lambda _, domain: maker.url(domain))
    pages = [
        (domain, page_url(pages_rng, domain))
        for domain in (pages_rng.choice(domains) for _ in range(PAGES_PER_TARGET))
    ]
    strengths = [pages_rng.random() for _ in pages]
    return [
        page
        for _, page in sorted(
            zip((s + rng.gauss(0, 0.12) for s in strengths), pages, strict=True), reverse=True
        )
    ]


def generate_result(task: dict, day: str, revision: int = 0, drift: bool = False) -> dict:
    """The ``result[0]`` object of task_get/advanced for a posted ``task`` on ``day``; a later
    ``revision`` is the same SERP as DataForSEO re-parsed it (another SERP, in the sandbox);
    with ``drift``, the odd undocumented item type and unknown field."""
    image_url = task["image_url"]
    location = task.get("location_code") or task.get("location_name")
    language = task.get("language_code") or task.get("language_name")
    rng = random.Random(
        seed_for(image_url, location, language, day, *((revision,) if revision else ()))
    )
    serp = _Serp(rng, bool(task.get("calculate_rectangles")))
    showing = iter(ranked_pages(rng, DOMAINS, image_url, location, language))
    pages = int(task.get("max_crawl_pages") or 1)
    items: list[dict] = []
    ranks: dict[str, int] = {}
    y = 150.0
    for _ in range(rng.randint(12, 30) * min(pages, 3)):
        roll = rng.random()
        kind = (
            "images" if roll < 0.06 else "related_searches" if roll < 0.075 and drift else "organic"
        )
        ranks[kind] = ranks.get(kind, 0) + 1
        rank_absolute = len(items) + 1
        if kind == "organic":
            item = serp.organic(ranks[kind], rank_absolute, y, next(showing, None))
            if rng.random() < 0.02 and drift:
                item["source_badge"] = "Verified"  # a field the reference does not know yet
        elif kind == "images":
            item = serp.images(ranks[kind], rank_absolute, y)
        else:  # an item type the reference does not document
            item = {
                "type": "related_searches",
                "rank_group": ranks[kind],
                "rank_absolute": rank_absolute,
                "position": "left",
                "xpath": None,
                "items": [serp.words(2, 4) for _ in range(rng.randint(3, 8))],
            }
        items.append(item)
        y += rng.uniform(90, 240)
    keyword = serp.maybe(serp.words(2, 4), 0.6)
    item_types = sorted({item["type"] for item in items})
    return {
        "image_url": image_url,
        "keyword": keyword,
        "type": "search_by_image",
        "se_domain": task.get("se_domain") or "lens.google.com",
        "location_code": task.get("location_code")
        or _LOCATION_CODES.get(task.get("location_name"), 2840),
        "language_code": task.get("language_code")
        or _LANGUAGE_CODES.get(task.get("language_name"), "en"),
        "check_url": "https://lens.google.com/uploadbyurl?url=" + quote(image_url, safe=""),
        "datetime": f"{day} {rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:"
        f"{rng.randint(0, 59):02d} +00:00",
        "spell": {"keyword": serp.words(2, 3), "type": rng.choice(SPELL_TYPES)}
        if keyword and rng.random() < 0.3
        else None,
        "refinement_chips": {
            "type": "refinement_chips",
            "xpath": "/html[1]/body[1]/div[4]/div[1]",
            "items": [
                {
                    "type": "refinement_chips_element",
                    "title": serp.words(1, 2),
                    "url": "https://www.google.com/search?q=" + quote(serp.words(1, 3)),
                    "domain": "www.google.com",
                    "options": [
                        {
                            "type": "refinement_chips_option",
                            "title": serp.words(1, 2),
                            "url": "https://www.google.com/search?q=" + quote(serp.words(1, 3)),
                            "domain": "www.google.com",
                        }
                        for _ in range(rng.randint(1, 3))
                    ]
                    if rng.random() < 0.6
                    else None,
                }
                for _ in range(rng.randint(2, 5))
            ],
        }
        if rng.random() < 0.5
        else None,
        "item_types": item_types,
        "se_results_count": rng.randint(0, 5_000_000) if rng.random() < 0.7 else 0,
        "items_count": len(items),
        "items": items,
    }
