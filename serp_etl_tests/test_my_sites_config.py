"""What is mine, in the targets file: groups of sites, each target's group, images' allowed
domains; checked with every other problem of the file, and never part of what is paid for."""

from __future__ import annotations

from pathlib import Path

import pytest

from serp_etl.core.targets import TargetConfigError
from serp_etl.my_sites.config import Domain, MySites, parse_my_sites
from serp_etl.providers.dataforseo.targets import parse_targets
from serp_etl.providers.semscraper.targets import parse_scrapes
from serp_etl.targets_check import check_targets
from serp_etl_tests.conftest import EXAMPLE_TARGETS

IMAGE = (
    '[[dataforseo]]\nimage_url = "https://a.example/b.jpg"\nlocation_code = 2840\n'
    'language_code = "en"\n'
)
KEYWORD = '[[semscraper]]\nkeyword = "Blue  Shoes"\nlocation = "us"\nlanguage = "en"\n'
SITES = (
    '[[sites]]\ngroup = "acme"\ndomains = ["Acme.com", "acme-shop.de."]\n'
    'hosts = ["acme.github.io"]\n'
)


def test_groups_targets_and_allowed_domains_are_read():
    mine = parse_my_sites(
        SITES
        + '[[sites]]\ndomains = ["mine.org"]\n'
        + IMAGE
        + 'group = "acme"\nallowed_domains = ["licensee.net"]\n'
        + KEYWORD,
        "t.toml",
    )
    assert mine.groups == {
        "acme": (
            Domain("acme.com", True),
            Domain("acme-shop.de", True),
            Domain("acme.github.io", False),
        ),
        "default": (Domain("mine.org", True),),
    }
    # A keyword as Google reads it (case and spaces); a target without a group: "default".
    assert mine.targets == {
        ("dataforseo", "https://a.example/b.jpg"): "acme",
        ("semscraper", "blue shoes"): "default",
    }
    assert mine.allowed == {"https://a.example/b.jpg": (Domain("licensee.net", True),)}
    assert set(mine.tables()) == {"my_domains", "my_targets", "image_allowed_domains"}
    assert mine.tables()["my_domains"].num_rows == 4


def test_whose_a_target_is_never_changes_what_is_posted_or_its_tag():
    # Moving a target to a group or allowing a domain must not make the day's task a new,
    # paid one: neither is part of the target's identity.
    (plain,) = parse_targets(IMAGE)
    (owned,) = parse_targets(SITES + IMAGE + 'group = "acme"\nallowed_domains = ["x.com"]\n')
    assert owned == plain and owned.tag("2026-12-04") == plain.tag("2026-12-04")
    assert "group" not in owned.task("2026-12-04")
    (keyword,) = parse_scrapes(KEYWORD, "t.toml")
    (grouped,) = parse_scrapes(SITES + KEYWORD + 'group = "acme"\n', "t.toml")
    assert grouped == keyword


def test_every_problem_of_what_is_mine_is_named():
    text = (
        '[[sites]]\ngroup = "acme"\ndomains = ["https://acme.com/shop", "acme"]\n'
        '[[sites]]\ngroup = "acme"\ndomains = ["again.com"]\n'
        '[[sites]]\ngroup = "empty"\nhome = "x"\n'
        + IMAGE
        + 'group = "nobody"\nallowed_domains = "x.com"\n'
        + IMAGE.replace("2840", "2250")
        + 'group = "acme"\n'
    )
    with pytest.raises(TargetConfigError) as raised:
        parse_my_sites(text, "t.toml")
    problems = raised.value.problems
    assert problems == [
        "sites #1: domains: 'https://acme.com/shop' is not a domain: write the domain alone, "
        "e.g. 'acme.com'",
        "sites #1: domains: 'acme' is not a domain (a name like 'example.com')",
        "sites #2: group 'acme' is already declared by sites #1; list all its domains there",
        "sites #3: unknown field(s) home; known: domains, group, hosts",
        "dataforseo target #1 ('https://a.example/b.jpg'): group 'nobody' has no [[sites]] "
        "entry; declared: 'acme'",
        "dataforseo target #1 ('https://a.example/b.jpg'): allowed_domains must be a list of "
        "domains, got 'x.com'",
        "dataforseo target #2 ('https://a.example/b.jpg'): in group 'acme', but target #1 of "
        "the same image_url is in 'nobody': one group each",
    ]


def test_a_keyword_cannot_name_allowed_domains():
    with pytest.raises(TargetConfigError, match=r"unknown field\(s\) allowed_domains"):
        parse_scrapes(KEYWORD + 'allowed_domains = ["x.com"]\n', "t.toml")


def test_targets_check_reports_what_is_mine_with_every_other_problem(tmp_path: Path):
    path = tmp_path / "targets.toml"
    path.write_text(SITES + IMAGE + 'group = "nobody"\npriority = 7\n', encoding="utf-8")
    with pytest.raises(TargetConfigError) as raised:
        check_targets(path, tmp_path)
    assert [p.split(": ", 1)[1] for p in raised.value.problems] == [
        "priority must be 1 (normal) or 2 (high), got 7",
        "group 'nobody' has no [[sites]] entry; declared: 'acme'",
    ]
    lines = check_targets(EXAMPLE_TARGETS, tmp_path)
    assert lines[-1] == (
        "my sites: 1 group of sites, 6 targets of mine, 3 images with allowed domains"
    )


def test_a_target_is_mine_only_when_the_file_says_so():
    # Nothing says whose it is: collected, never watched (no alert for every image tracked).
    assert parse_my_sites(IMAGE + KEYWORD, "t.toml") == MySites()
    allowed = parse_my_sites(IMAGE + 'allowed_domains = ["x.com"]\n' + KEYWORD, "t.toml")
    assert allowed.targets == {("dataforseo", "https://a.example/b.jpg"): "default"}
    # A [[sites]] without a group: every target is in it.
    everything = parse_my_sites('[[sites]]\ndomains = ["x.com"]\n' + IMAGE + KEYWORD, "t.toml")
    assert set(everything.targets.values()) == {"default"} and len(everything.targets) == 2
