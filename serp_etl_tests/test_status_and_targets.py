"""Status classification, prices and the targets file."""

from __future__ import annotations

import pytest

from serp_etl.core.targets import TargetConfigError
from serp_etl.providers.dataforseo.settings import Outcome, classify, task_price
from serp_etl.providers.dataforseo.targets import load_targets, parse_targets
from serp_etl_tests.conftest import EXAMPLE_TARGETS


@pytest.mark.parametrize(
    ("code", "message", "outcome"),
    [
        (20000, "Ok.", Outcome.SUCCESS),
        (20100, "Task Created.", Outcome.SUCCESS),
        (40601, "Task Handed.", Outcome.NOT_READY),
        (40602, "Task In Queue.", Outcome.NOT_READY),
        (40102, "No Search Results.", Outcome.BILLED_EMPTY),
        (40501, "No Search Results.", Outcome.BILLED_EMPTY),  # seen in the wild as 40501
        (40501, "Invalid Field: 'image_url'.", Outcome.PERMANENT),
        (40401, "Task Not Found.", Outcome.PERMANENT),
        (40403, "Results Expired.", Outcome.PERMANENT),
        (40210, "Insufficient funds.", Outcome.PERMANENT),
        (40202, "Rate limit per minute exceeded.", Outcome.RETRYABLE),
        (40209, "Too many requests.", Outcome.RETRYABLE),
        (50000, "Internal Error.", Outcome.RETRYABLE),
        (50999, "A new server error.", Outcome.RETRYABLE),  # any 5xxxx is server-side
        (40777, "A code from the future.", Outcome.UNKNOWN),
        ("20000", "Ok.", Outcome.UNKNOWN),  # not an integer: not guessed
        (None, None, Outcome.UNKNOWN),
    ],
)
def test_status_codes_are_classified(code, message, outcome):
    assert classify(code, message) is outcome


def test_prices_follow_the_price_table():
    assert task_price(1) == 0.0006
    assert task_price(2) == 0.0012
    assert task_price(1, max_crawl_pages=3) == 0.0018
    assert task_price(2, calculate_rectangles=True) == 0.0024


def test_the_example_targets_file_is_valid():
    targets = load_targets(EXAMPLE_TARGETS)
    assert len(targets) >= 5
    tags = {t.tag("2026-11-23") for t in targets}
    assert len(tags) == len(targets)
    assert all(len(tag) <= 255 for tag in tags)


def test_tags_are_deterministic_per_date_and_target():
    (target,) = parse_targets(
        '[[dataforseo]]\nimage_url = "https://a/b.jpg"\n'
        'location_code = 2840\nlanguage_code = "en"\n'
    )
    assert target.tag("2026-11-23") == target.tag("2026-11-23")
    assert target.tag("2026-11-23") != target.tag("2026-11-24")
    assert target.task("2026-11-23") == {
        "image_url": "https://a/b.jpg",
        "location_code": 2840,
        "language_code": "en",
        "priority": 1,
        "tag": target.tag("2026-11-23"),
    }


BASE = 'image_url = "https://a/b.jpg"\nlocation_code = 2840\nlanguage_code = "en"\n'


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (
            'image_url = "ftp://a/b.jpg"\nlocation_code = 2840\nlanguage_code = "en"\n',
            "image_url must be an http",
        ),
        (BASE + "priority = 3\n", "priority must be 1"),
        (BASE + "max_crawl_pages = 101\n", "max_crawl_pages must be 1 to 100"),
        (BASE + 'location_name = "United States"\n', "exactly one of location_code"),
        ('image_url = "https://a/b.jpg"\nlanguage_code = "en"\n', "exactly one of location_code"),
        (BASE + "colour = 1\n", "unknown field(s) colour"),
        (BASE.replace("2840", '"2840"'), "location_code must be int"),
    ],
)
def test_a_bad_target_is_named_with_what_is_wrong(entry, message):
    text = f"[[dataforseo]]\n{BASE}\n[[dataforseo]]\n{entry}"
    with pytest.raises(TargetConfigError, match="target #2") as error:
        parse_targets(text, "targets.toml")
    assert message in str(error.value)


def test_duplicates_missing_files_and_bad_toml_are_clear(tmp_path):
    with pytest.raises(TargetConfigError, match="duplicate of target #1"):
        parse_targets(f"[[dataforseo]]\n{BASE}\n[[dataforseo]]\n{BASE}")
    with pytest.raises(TargetConfigError, match="no targets file"):
        load_targets(tmp_path / "targets.toml")
    with pytest.raises(TargetConfigError, match="not valid TOML"):
        parse_targets("[[dataforseo]\n")


def test_keywords_that_differ_only_in_case_or_spaces_are_one_query_billed_twice():
    from serp_etl.providers.semscraper.targets import parse_scrapes

    text = (
        '[[semscraper]]\nkeyword = "Tropical Wallpaper"\nlocation = "fr"\nlanguage = "fr"\n'
        '[[semscraper]]\nkeyword = "  tropical   wallpaper "\nlocation = "fr"\n'
        'language = "fr"\n'
    )
    with pytest.raises(TargetConfigError) as error:
        parse_scrapes(text, "targets.toml")
    message = str(error.value)
    assert "target #2 ('  tropical   wallpaper ')" in message
    assert "duplicate of target #1 ('Tropical Wallpaper')" in message and "billed" in message
    # Another location is another query.
    assert (
        len(
            parse_scrapes(
                text.replace(
                    'location = "fr"\nlanguage = "fr"\n', 'location = "be"\nlanguage = "fr"\n', 1
                ),
                "targets.toml",
            )
        )
        == 2
    )


def test_a_location_that_does_not_exist_is_said_so_and_upper_case_codes_get_a_hint():
    from serp_etl.providers.semscraper.client import Scrape
    from serp_etl.providers.semscraper.targets import check_locations

    offered = [{"location": "us", "language": "en"}, {"location": "fr", "language": "fr"}]
    with pytest.raises(TargetConfigError) as error:
        check_locations([Scrape("k", "zz", "zz")], offered)
    assert "#1 ('k'): 'zz' is not a location semscraper offers" in str(error.value)
    with pytest.raises(TargetConfigError) as error:
        check_locations([Scrape("k", "US", "EN")], offered)
    assert "codes are lower case: location = 'us', language = 'en'" in str(error.value)
