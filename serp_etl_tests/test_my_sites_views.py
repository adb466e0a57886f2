"""my_ranks, image_reuse and the day's alerts on four sandbox days, against what the raw
responses say, read here in plain Python (the SQL is not trusted), and against the exact rows
these days hold (the sandbox is deterministic: its pages stay from day to day and move)."""

from __future__ import annotations

from collections import defaultdict

import pytest

from serp_etl import catalog
from serp_etl.core.warehouse import Warehouse
from serp_etl.my_sites.alerts import KINDS, Thresholds, day_alerts, rank_kind
from serp_etl.my_sites.config import Domain, load_my_sites, target_key
from serp_etl_tests import sandbox_days
from serp_etl_tests.conftest import EXAMPLE_TARGETS
from serp_etl_tests.test_analysis import query, raw_serps

DAYS = ["2026-03-02", "2026-03-03", "2026-03-04", "2026-03-05"]
MINE = load_my_sites(EXAMPLE_TARGETS)


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory) -> Warehouse:
    return sandbox_days.build(tmp_path_factory.mktemp("my_sites") / "data", days=DAYS)


def on_domain(domain: Domain, host: str | None) -> bool:
    """The domain itself, or (with subdomains) a host ending in ".<domain>"."""
    return bool(host) and (
        host == domain.name or (domain.with_subdomains and host.endswith("." + domain.name))
    )


def test_a_domain_covers_its_subdomains_and_a_host_only_itself():
    shop = MINE.groups["jungle-prints"]
    assert [on_domain(d, "www.tropicalwallpaper.com") for d in shop] == [True, False, False]
    assert [on_domain(d, "x.tapete-dschungel-shop.de") for d in shop] == [False] * 3
    assert not on_domain(shop[0], "nottropicalwallpaper.com")


def serps_by_target(warehouse: Warehouse) -> dict[tuple, dict[str, list[dict]]]:
    """Target key -> day -> the organic items of its SERPs that day."""
    found: dict[tuple, dict[str, list[dict]]] = defaultdict(lambda: defaultdict(list))
    for serp in raw_serps(warehouse):
        found[serp["key"]][serp["date"]].extend(
            item for item in serp["items"] if item["item_type"] == "organic"
        )
    return found


def group_of(key: tuple) -> str | None:
    return MINE.targets.get((key[0], target_key(key[0], key[1])))


def expected_ranks(warehouse: Warehouse) -> set[tuple]:
    rows = set()
    for key, days in serps_by_target(warehouse).items():
        group = group_of(key)
        for domain in MINE.groups.get(group, ()):
            previous = None
            for day in sorted(days):
                found = sorted(
                    (i["rank_group"], i["url"]) for i in days[day] if on_domain(domain, i["domain"])
                )
                rank, url = found[0] if found else (None, None)
                flags = (None,) * 5
                if previous is not None:
                    was = previous[1]
                    flags = (
                        None if rank is None or was is None else was - rank,
                        (rank or 99) <= 10 < (was or 99),
                        (was or 99) <= 10 < (rank or 99),
                        was is None and rank is not None,
                        was is not None and rank is None,
                    )
                rows.add(
                    (
                        group,
                        *key,
                        domain.name,
                        day,
                        rank,
                        url,
                        previous[0] if previous else None,
                        previous[1] if previous else None,
                        *flags,
                    )
                )
                previous = (day, rank)
    return rows


def expected_reuse(warehouse: Warehouse) -> set[tuple]:
    pages = []
    for key, days in serps_by_target(warehouse).items():
        group = group_of(key)
        if key[0] != "dataforseo" or group is None:  # not an image of mine
            continue
        allowed = MINE.allowed.get(key[1], ()) + MINE.groups.get(group, ())
        collected = sorted(days)
        for day in collected:
            best: dict[tuple, int] = {}
            for item in days[day]:
                if item["url"] and not any(on_domain(d, item["domain"]) for d in allowed):
                    page = (item["domain"], item["url"])
                    best[page] = min(best.get(page, 999), item["rank_group"])
            previous = collected[collected.index(day) - 1] if day != collected[0] else None
            pages += [
                (group, key, day, domain, url, rank, previous, collected[0])
                for (domain, url), rank in best.items()
            ]
    rows = set()
    for group, key, day, domain, url, rank, previous, first_day in pages:
        first = min(p[2] for p in pages if p[1] == key and p[4] == url)
        domain_first = min(p[2] for p in pages if p[1] == key and p[3] == domain)
        new_page = first == day if day > first_day else None
        new_domain = domain_first == day if day > first_day else None
        rows.add(
            (
                group,
                key[1],
                key[2],
                key[3],
                day,
                domain,
                url,
                rank,
                previous,
                first,
                domain_first,
                new_page,
                new_domain,
            )
        )
    return rows


def test_my_ranks_hold_my_best_rank_each_collected_day_as_the_responses_say(warehouse):
    rows = query(warehouse, "SELECT * FROM my_ranks")
    got = {
        (
            r["group_name"],
            r["provider"],
            r["target"],
            r["location"],
            r["language"],
            r["device"],
            r["domain"],
            str(r["date"]),
            r["rank"],
            r["url"],
            r["previous_date"] and str(r["previous_date"]),
            r["previous_rank"],
            r["rank_change"],
            r["entered_top10"],
            r["left_top10"],
            r["entered_serp"],
            r["left_serp"],
        )
        for r in rows
    }
    assert len(got) == len(rows) and got == expected_ranks(warehouse)


def test_my_ranks_of_one_keyword_over_four_days(warehouse):
    # The sandbox keeps a keyword's pages from day to day and moves them: my shop rose to #2,
    # fell out of the (10-result) SERP, and came back at #9.
    rows = query(
        warehouse,
        "SELECT date, rank, previous_rank, rank_change, entered_top10, "
        "left_top10, entered_serp, left_serp, url FROM my_ranks WHERE target = ? "
        "AND domain = ? ORDER BY date",
        ["papier peint tropical", "papierpeinttropical.fr"],
    )
    page = "https://www.papierpeinttropical.fr/ideas/papier-peint-tropical-"
    assert [
        (
            str(r["date"]),
            r["rank"],
            r["previous_rank"],
            r["rank_change"],
            r["entered_top10"],
            r["left_top10"],
            r["entered_serp"],
            r["left_serp"],
        )
        for r in rows
    ] == [
        ("2026-03-02", 10, None, None, None, None, None, None),
        ("2026-03-03", 2, 10, 8, False, False, False, False),
        ("2026-03-04", None, 2, None, False, True, False, True),
        ("2026-03-05", 9, None, None, True, False, True, False),
    ]
    assert rows[0]["url"].startswith(page) and rows[2]["url"] is None


def test_image_reuse_lists_each_unallowed_page_as_the_responses_say(warehouse):
    rows = query(warehouse, "SELECT * FROM image_reuse")
    got = {
        (
            r["group_name"],
            r["image_url"],
            r["location"],
            r["language"],
            str(r["date"]),
            r["domain"],
            r["url"],
            r["rank"],
            r["previous_date"] and str(r["previous_date"]),
            str(r["first_seen"]),
            str(r["domain_first_seen"]),
            r["is_new_page"],
            r["is_new_domain"],
        )
        for r in rows
    }
    assert len(got) == len(rows) and got == expected_reuse(warehouse)
    # Allowed domains (the image's own, and its group's sites) are never listed.
    shutterstock = [r for r in rows if "shutterstock_721703848" in r["image_url"]]
    assert shutterstock and not [
        r for r in shutterstock if r["domain"].endswith(("shutterstock.com", "pinterest.com"))
    ]


def test_the_days_alerts_are_exactly_the_changes_past_the_thresholds(warehouse):
    thresholds = Thresholds()
    expected = set()
    for row in expected_ranks(warehouse):
        (
            group,
            provider,
            target,
            location,
            language,
            device,
            domain,
            day,
            rank,
            _,
            previous,
            was,
            *_,
        ) = row
        kind = rank_kind(was, rank, thresholds) if previous else None
        if kind:
            expected.add((day, kind, provider, target, domain))
    hosts = {
        (r[4], "new_image_host", "dataforseo", r[1], r[5])
        for r in expected_reuse(warehouse)
        if r[12] and r[5]
    }
    got = set()
    with catalog.connect(warehouse.data_dir) as connection:
        for day in DAYS:
            for provider in ("dataforseo", "semscraper"):
                table = day_alerts(connection, provider, day, thresholds)
                got |= {
                    (day, a["kind"], a["provider"], a["target"], a["domain"])
                    for a in table.to_pylist()
                }
                assert len(set(table.column("alert_id").to_pylist())) == table.num_rows
    assert got == expected | hosts
    # What these four days hold: one domain of mine moved each day, and new sites showed
    # images on each day after the first.
    assert sorted(a for a in got if a[1] != "new_image_host") == [
        (
            "2026-03-03",
            "rank_rise",
            "semscraper",
            "papier peint tropical",
            "papierpeinttropical.fr",
        ),
        (
            "2026-03-04",
            "left_serp",
            "semscraper",
            "papier peint tropical",
            "papierpeinttropical.fr",
        ),
        (
            "2026-03-05",
            "entered_serp",
            "semscraper",
            "papier peint tropical",
            "papierpeinttropical.fr",
        ),
    ]
    assert [sum(a[0] == day for a in hosts) for day in DAYS] == [0, 3, 1, 4]


def test_a_days_alerts_read_a_bounded_window_of_days(warehouse, monkeypatch):
    """The alerts read my_ranks_between and image_reuse_between over the lookback: the same
    rows as the views where the window holds the whole history, nothing to compare with where
    it holds one day only."""
    from serp_etl.my_sites import alerts

    for view in ("my_ranks", "image_reuse"):
        every = query(warehouse, f"SELECT * FROM {view} ORDER BY ALL")
        assert (
            every
            and query(
                warehouse, f"SELECT * FROM {view}_between(?, ?) ORDER BY ALL", [DAYS[0], DAYS[-1]]
            )
            == every
        )
        later = query(
            warehouse,
            f"SELECT * FROM {view}_between(?, ?) WHERE date = ? ORDER BY ALL",
            [DAYS[-1], DAYS[-1], DAYS[-1]],
        )
        assert later and all(row["previous_date"] is None for row in later)
    monkeypatch.setattr(alerts, "LOOKBACK_DAYS", 0)
    with catalog.connect(warehouse.data_dir) as connection:
        assert all(
            day_alerts(connection, provider, DAYS[-1], Thresholds()).num_rows == 0
            for provider in ("dataforseo", "semscraper")
        )


@pytest.mark.parametrize(
    ("before", "after", "kind"),
    [
        (3, None, "left_serp"),
        (None, 14, "entered_serp"),
        (12, 4, "entered_top10"),
        (None, 4, "entered_serp"),
        (9, 11, "left_top10"),
        (8, 5, "rank_rise"),
        (5, 8, "rank_drop"),
        (5, 7, None),
        (20, 22, None),
        (None, None, None),
        (11, 10, "entered_top10"),
    ],
)
def test_a_move_raises_the_first_kind_that_applies(before, after, kind):
    assert rank_kind(before, after, Thresholds()) == kind


def test_thresholds_choose_which_moves_are_alerts():
    only_moves = Thresholds(min_rank_change=2, kinds=frozenset({"rank_rise", "rank_drop"}))
    assert rank_kind(12, 4, only_moves) == "rank_rise"  # entered_top10 is not wanted
    assert rank_kind(5, 7, only_moves) == "rank_drop" and rank_kind(3, None, only_moves) is None
    assert Thresholds.from_env(
        {"SERP_ETL_ALERT_MIN_RANK_CHANGE": "5", "SERP_ETL_ALERT_KINDS": "rank_drop, left_serp"}
    ) == Thresholds(5, frozenset({"rank_drop", "left_serp"}))
    assert Thresholds.from_env({}) == Thresholds(3, frozenset(KINDS))
    for bad in ({"SERP_ETL_ALERT_MIN_RANK_CHANGE": "-1"}, {"SERP_ETL_ALERT_KINDS": "rank_up"}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            Thresholds.from_env(bad)


def test_the_report_opens_with_my_sites(warehouse):
    from serp_etl import report

    with catalog.connect(warehouse.data_dir) as connection:
        built = report.build(connection, "semscraper", DAYS[2])
    assert built.markdown.startswith(
        "**My sites**: 2 of my domains ranked, 2 moved since the previous collected day; 0 alerts."
    )
    mine = built.html[built.html.index("<h2>My sites</h2>") : built.html.index("<p id=")]
    assert built.html.index("<h2>My sites</h2>") < built.html.index("<h2>Health")
    assert "<td>papierpeinttropical.fr</td>" in mine and "<td>left</td>" in mine
