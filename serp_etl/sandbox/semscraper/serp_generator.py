"""Deterministic, realistic SemScraper SERPs: the same (keyword, device, location, language,
depth, day) always gives the same blocks and items, across every block type of the reference
and a few more the live service shows."""

from __future__ import annotations

import html
import random
from urllib.parse import quote

from serp_etl.sandbox.dataforseo.serp_generator import digest_of, ranked_pages, seed_for

DOMAINS = [
    "www.seoquantum.com", "storychief.io", "www.indeed.com", "www.usg.edu", "backlinko.com",
    "guides.lib.uh.edu", "www.tactee.fr", "learn.microsoft.com", "ahrefs.com", "moz.com",
    "fr.wikipedia.org", "www.lemonde.fr", "searchfacts.com", "www.semrush.com", "neilpatel.com",
]
WORDS = ["keyword", "SEO", "recherche", "exemple", "types", "stratégie", "guide", "mots-clés",
         "organic", "longue traîne", "contenu", "Google", "référencement", "2025", "outil",
         "analyse", "intention", "requête", "débutant", "checklist"]
# Block types of the reference page first, then others the live SERP carries.
BLOCK_TYPES = ["organic", "people_also_ask", "videos", "images", "top_stories",
               "related_searches", "local_pack", "shopping"]
REFERENCE_BLOCKS = BLOCK_TYPES[1:4]
OTHER_BLOCKS = BLOCK_TYPES[4:]
PIXELS_PER_ITEM = {"organic": 146, "people_also_ask": 53, "videos": 151, "images": 0,
                   "top_stories": 120, "related_searches": 40, "local_pack": 90, "shopping": 0}


def _words(rng: random.Random, low: int, high: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(low, high)))


def generate_results(keyword: str, device: str, location: str, language: str, depth: int,
                     day: str) -> list[dict]:
    """The ``results`` array of a done scrape."""
    rng = random.Random(seed_for("semscraper", keyword, device, location, language, depth, day))
    # Organic results from the keyword's own pages, in the day's order (see ranked_pages).
    showing = iter(ranked_pages(rng, DOMAINS, "semscraper", keyword, device, location, language))
    blocks: list[dict] = []
    rank_serp, pixel = 0, 180
    for page in range(1, depth + 1):
        kinds = ["organic"]
        if page == 1:
            # The reference's own block types most of the time, and up to two others.
            kinds += [k for k in REFERENCE_BLOCKS if rng.random() < 0.7]
            kinds += rng.sample(OTHER_BLOCKS, k=rng.randint(0, 2))
        rng.shuffle(kinds)
        for kind in kinds:
            count = rng.randint(7, 10) if kind == "organic" else rng.randint(2, 6)
            items = []
            for rank_type in range(1, count + 1):
                rank_serp += 1
                shown = next(showing, None) if kind == "organic" else None
                if shown:
                    domain, url = shown
                else:
                    domain = rng.choice(DOMAINS)
                    url = f"https://{domain}/" + quote(_words(rng, 2, 4).replace(" ", "-"),
                                                      safe="-")
                items.append({
                    "rank_type": rank_type, "rank_serp": rank_serp, "page": page,
                    # SemScraper leaves some items' domain empty (its URL has it); chosen from
                    # the URL, not drawn, so that every other value stays as it was.
                    "pixel": pixel, "domain": "" if digest_of(url) % 8 == 0 else domain,
                    "url": url,
                    "title": "" if kind == "images" else _words(rng, 3, 9).capitalize(),
                    "description": _words(rng, 8, 25) if kind == "organic" else "",
                })
                pixel += PIXELS_PER_ITEM[kind] + rng.randint(0, 20)
            blocks.append({"type": kind, "items": items})
        pixel += 400  # the next page
    return blocks


def render_html(keyword: str, results: list[dict]) -> str:
    """A small, deterministic stand-in for the raw SERP HTML."""
    parts = [f"<!doctype html><html><head><title>{html.escape(keyword)} - Google Search"
             "</title></head><body>"]
    for block in results:
        parts.append(f'<div class="block" data-type="{html.escape(block["type"])}">')
        for item in block["items"]:
            parts.append(f'<a href="{html.escape(item["url"])}" data-rank="{item["rank_serp"]}">'
                         f'<h3>{html.escape(item["title"])}</h3></a>'
                         f'<span>{html.escape(item["description"])}</span>')
        parts.append("</div>")
    parts.append("</body></html>")
    return "".join(parts)
