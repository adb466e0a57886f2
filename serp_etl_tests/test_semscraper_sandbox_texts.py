"""The SemScraper sandbox's SERPs read like the keyword's own: sites that would rank for it, and
titles and descriptions about it in the scrape's language (a first report that persuades)."""

from __future__ import annotations

import pytest

from serp_etl.sandbox.semscraper.serp_generator import generate_results

SEO_TOOLS = {"ahrefs.com", "moz.com", "www.semrush.com", "backlinko.com", "neilpatel.com"}
FRENCH = {"le", "la", "les", "de", "des", "pour", "en"}
ENGLISH = {"the", "for", "your", "of", "and", "to"}


def items(keyword: str, location: str, language: str, day: str = "2026-12-04") -> list[dict]:
    return [
        item
        for block in generate_results(keyword, "desktop", location, language, 2, day)
        if block["type"] == "organic"
        for item in block["items"]
    ]


def words(text: str) -> set[str]:
    return {word.strip(".,:|!?–-").casefold() for word in text.split()}


@pytest.mark.parametrize(
    ("keyword", "location", "language", "own", "other"),
    [
        ("tropical wallpaper", "us", "en", ENGLISH, FRENCH),
        ("papier peint tropical", "fr", "fr", FRENCH, ENGLISH),
    ],
)
def test_every_organic_result_is_about_the_keyword_in_its_language(
    keyword, location, language, own, other
):
    organic = items(keyword, location, language)
    assert len(organic) >= 14
    assert not {item["domain"] for item in organic} & SEO_TOOLS
    keyword_words = words(keyword)
    for item in organic:
        assert words(item["title"]) & keyword_words, item["title"]
        assert words(item["description"]) & keyword_words, item["description"]
    text = words(" ".join(f"{i['title']} {i['description']}" for i in organic))
    assert len(text & own) >= 3 and not text & other - own


def test_a_keywords_sites_differ_from_another_keywords_and_stay_from_day_to_day():
    wallpaper = {i["url"] for i in items("tropical wallpaper", "us", "en")}
    towels = {i["url"] for i in items("beach towel", "us", "en")}
    assert len(wallpaper & towels) <= 3  # the big sites may rank for both, not their pages
    tomorrow = {i["url"] for i in items("tropical wallpaper", "us", "en", "2026-12-05")}
    assert len(wallpaper & tomorrow) >= len(wallpaper) // 2
