"""Deterministic, realistic SemScraper SERPs: the same (keyword, device, location, language,
depth, day) always gives the same blocks and items, across every block type of the reference
and a few more the live service shows."""

from __future__ import annotations

import html
import random
import unicodedata
from urllib.parse import quote

from serp_etl.sandbox.dataforseo.serp_generator import digest_of, ranked_pages, seed_for

# Sites that rank for almost any product or topic, by the scrape's language; each keyword adds
# sites named after it (a shop, a blog), as a real SERP has.
GENERAL_SITES = {
    "en": [
        "www.pinterest.com",
        "www.etsy.com",
        "www.amazon.com",
        "en.wikipedia.org",
        "www.wayfair.com",
        "www.reddit.com",
        "www.youtube.com",
        "www.houzz.com",
    ],
    "fr": [
        "www.pinterest.fr",
        "www.etsy.com",
        "www.amazon.fr",
        "fr.wikipedia.org",
        "www.leroymerlin.fr",
        "www.maisonsdumonde.com",
        "www.youtube.com",
        "www.cdiscount.com",
    ],
    "de": [
        "www.pinterest.de",
        "www.etsy.com",
        "www.amazon.de",
        "de.wikipedia.org",
        "www.otto.de",
        "www.hornbach.de",
        "www.youtube.com",
        "www.idealo.de",
    ],
}
OWN_SITES = ["www.{slug}.{tld}", "{dashed}-shop.{tld}", "blog.{slug}.com", "www.the{slug}.{tld}"]
TLDS = {"us": "com", "gb": "co.uk", "fr": "fr", "be": "be", "de": "de", "ch": "ch", "ca": "ca"}
# Titles, descriptions and questions about the keyword ({k}, {K} capitalized), by language;
# other languages read English ones.
TEXTS = {
    "en": {
        "titles": [
            "{K} | {site}",
            "{n} {k} ideas you will love",
            "Buy {k} online",
            "{K}: the complete guide for {year}",
            "Best {k} of {year}",
            "{K} - shop the collection",
        ],
        "descriptions": [
            "Discover our selection of {k} and find the one for your home. Free delivery "
            "on orders over $50.",
            "Find the best {k} ideas, tips and inspiration for every room of your home.",
            "Shop {k} at great prices: {n} products in stock, shipped within 48 hours.",
            "Everything you need to know about {k}: styles, prices and how to choose.",
        ],
        "questions": [
            "What is {k}?",
            "How much does {k} cost?",
            "Where to buy {k}?",
            "Is {k} worth it?",
        ],
    },
    "fr": {
        "titles": [
            "{K} | {site}",
            "{n} idées de {k} à découvrir",
            "Acheter {k} en ligne",
            "{K} : le guide complet {year}",
            "Les meilleurs {k} en {year}",
            "{K} - découvrez la collection",
        ],
        "descriptions": [
            "Découvrez notre sélection de {k} pour la maison. Livraison offerte dès 50 €.",
            "Trouvez les meilleures idées de {k} : conseils et inspiration pour chaque pièce.",
            "Achetez {k} au meilleur prix : {n} produits en stock, livrés en 48 h.",
            "Tout savoir sur {k} : les styles, les prix et comment bien choisir.",
        ],
        "questions": [
            "Qu'est-ce que {k} ?",
            "Quel est le prix de {k} ?",
            "Où acheter {k} ?",
            "Comment choisir {k} ?",
        ],
    },
    "de": {
        "titles": [
            "{K} | {site}",
            "{n} Ideen für {k}",
            "{K} online kaufen",
            "{K}: der große Ratgeber {year}",
            "Die besten {k} {year}",
            "{K} – jetzt die Kollektion entdecken",
        ],
        "descriptions": [
            "Entdecken Sie unsere Auswahl an {k} für Ihr Zuhause. Versandkostenfrei ab 50 €.",
            "Die schönsten Ideen für {k}: Tipps und Inspiration für jeden Raum.",
            "{K} günstig kaufen: {n} Produkte auf Lager, Lieferung in 48 Stunden.",
            "Alles über {k}: Stile, Preise und wie Sie richtig wählen.",
        ],
        "questions": [
            "Was ist {k}?",
            "Was kostet {k}?",
            "Wo kann man {k} kaufen?",
            "Wie wählt man {k}?",
        ],
    },
}


def _slug(keyword: str, joiner: str) -> str:
    """The keyword as a host name part: ASCII letters and digits, words joined."""
    ascii_words = unicodedata.normalize("NFKD", keyword).encode("ascii", "ignore").decode()
    return joiner.join(
        "".join(c for c in word if c.isalnum()).lower()
        for word in ascii_words.split()
        if any(c.isalnum() for c in word)
    )


def keyword_sites(keyword: str, location: str, language: str) -> list[str]:
    """The sites that rank for ``keyword``: the language's general ones and its own."""
    tld = TLDS.get(location, "com")
    slug, dashed = _slug(keyword, ""), _slug(keyword, "-")
    own = [pattern.format(slug=slug, dashed=dashed, tld=tld) for pattern in OWN_SITES]
    return GENERAL_SITES.get(language, GENERAL_SITES["en"]) + (own if slug else [])


def _site_name(domain: str) -> str:
    parts = domain.split(".")
    return (parts[1] if parts[0] in {"www", "blog", "en", "fr", "de"} else parts[0]).title()


def _text(rng: random.Random, texts: dict, kind: str, keyword: str, domain: str, day: str) -> str:
    template = rng.choice(texts[kind])
    return template.format(
        k=keyword,
        K=keyword[:1].upper() + keyword[1:],
        site=_site_name(domain),
        n=rng.randint(12, 250),
        year=day[:4],
    )


PAGE_PATHS = ["ideas", "shop", "blog", "products", "guide", "c"]
# Block types of the reference page first, then others the live SERP carries.
BLOCK_TYPES = [
    "organic",
    "people_also_ask",
    "videos",
    "images",
    "top_stories",
    "related_searches",
    "local_pack",
    "shopping",
]
REFERENCE_BLOCKS = BLOCK_TYPES[1:4]
OTHER_BLOCKS = BLOCK_TYPES[4:]
PIXELS_PER_ITEM = {
    "organic": 146,
    "people_also_ask": 53,
    "videos": 151,
    "images": 0,
    "top_stories": 120,
    "related_searches": 40,
    "local_pack": 90,
    "shopping": 0,
}


def generate_results(
    keyword: str, device: str, location: str, language: str, depth: int, day: str
) -> list[dict]:
    """The ``results`` array of a done scrape."""
    rng = random.Random(seed_for("semscraper", keyword, device, location, language, depth, day))
    sites, texts = keyword_sites(keyword, location, language), TEXTS.get(language, TEXTS["en"])
    slug = quote(" ".join(keyword.split()).lower().replace(" ", "-"), safe="-")

    def page_url(page_rng: random.Random, domain: str) -> str:
        return f"https://{domain}/{page_rng.choice(PAGE_PATHS)}/{slug}-{page_rng.randint(10, 9999)}"

    # Organic results from the keyword's own pages, in the day's order (see ranked_pages).
    showing = iter(
        ranked_pages(
            rng, sites, "semscraper", keyword, device, location, language, page_url=page_url
        )
    )
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
                    domain = rng.choice(sites)
                    url = page_url(rng, domain)
                items.append(
                    {
                        "rank_type": rank_type,
                        "rank_serp": rank_serp,
                        "page": page,
                        # SemScraper leaves some items' domain empty (its URL has it); chosen from
                        # the URL, not drawn, so that every other value stays as it was.
                        "pixel": pixel,
                        "domain": "" if digest_of(url) % 8 == 0 else domain,
                        "url": url,
                        "title": ""
                        if kind == "images"
                        else _text(
                            rng,
                            texts,
                            "questions" if kind == "people_also_ask" else "titles",
                            keyword,
                            domain,
                            day,
                        ),
                        "description": _text(rng, texts, "descriptions", keyword, domain, day)
                        if kind == "organic"
                        else "",
                    }
                )
                pixel += PIXELS_PER_ITEM[kind] + rng.randint(0, 20)
            blocks.append({"type": kind, "items": items})
        pixel += 400  # the next page
    return blocks


def render_html(keyword: str, results: list[dict]) -> str:
    """A small, deterministic stand-in for the raw SERP HTML."""
    parts = [
        f"<!doctype html><html><head><title>{html.escape(keyword)} - Google Search"
        "</title></head><body>"
    ]
    for block in results:
        parts.append(f'<div class="block" data-type="{html.escape(block["type"])}">')
        for item in block["items"]:
            parts.append(
                f'<a href="{html.escape(item["url"])}" data-rank="{item["rank_serp"]}">'
                f"<h3>{html.escape(item['title'])}</h3></a>"
                f"<span>{html.escape(item['description'])}</span>"
            )
        parts.append("</div>")
    parts.append("</body></html>")
    return "".join(parts)
