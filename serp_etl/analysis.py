"""Ready-made questions over both providers: views over the table views, in the views file.

Defined once, here, as SQL over the ``<provider>_<table>`` views; ``core.views`` writes them
into the views file after the table views, so the CLI, the views file and any BI tool see the
same ones. Each is documented in the README ("Ready-made views"). Every view keeps ``date`` as
a plain column of its rows, so a query's ``date`` filter still reaches the Parquet scans (a
one-day question reads one day); the views that compare a day with the previous collected day
read the target's history, the one place where a day's question reads more than its day.

How the two providers meet in ``serp_items``:

=============  ==========================================  =================================
column         DataForSEO (search by image)                SemScraper (keyword SERP)
=============  ==========================================  =================================
target         serps.image_url (or keyword)                serps.keyword
location       serps.location_code, as text ("2840")       serps.location ("us")
language       serps.language_code                         serps.language
device         "desktop" (Search by Image is desktop)      serps.device
item_type      organic/images/other_items .type            items.block_type
rank_group     .rank_group                                 position among the SERP's items of
                                                           its block type, in rank_serp order
                                                           (rank_type restarts on each page)
rank_absolute  .rank_absolute                              items.rank_serp
domain         host of url; else .domain (a shopping       host of url; else items.domain
               result's .domain is a price label)          (SemScraper sends some empty)
url            .url (other items: item->>'url')            items.url
title          .title                                      items.title ("" as NULL)
description    organic.description (other items: JSON)     items.description ("" as NULL)
serp_id        task_id                                     id
block_index    NULL                                        items.block_index
item_index     .item_index                                 items.item_index
=============  ==========================================  =================================
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from serp_etl.core.views import DerivedView
from serp_etl.my_sites.alerts import ALERTS_TABLE, TOP
from serp_etl.providers.dataforseo import settings as dataforseo
from serp_etl.providers.instances import check_instance, provider_of
from serp_etl.providers.semscraper import settings as semscraper
from serp_etl.state.ledger import PENDING_STATES, TaskState

if TYPE_CHECKING:
    from serp_etl.core.provider import ProviderTables


# The host of a URL (scheme, optional user info, then the host), lower case; NULL if none.
def _host(url: str) -> str:
    return (
        f"nullif(lower(regexp_extract({url}, "
        "'^[A-Za-z][A-Za-z0-9+.-]*://(?:[^/?#@]*@)?([^/?#:]+)', 1)), '')"
    )


_TARGET_KEYS = ("provider", "target", "location", "language", "device")
# Keys may be NULL (a SERP without a language, say): compared so that NULL meets NULL.
_SAME_TARGET = " AND ".join(f"{{a}}.{key} IS NOT DISTINCT FROM {{b}}.{key}" for key in _TARGET_KEYS)


def _same_target(a: str, b: str) -> str:
    return _SAME_TARGET.format(a=a, b=b)


def _of(instances: Sequence[str], provider: str) -> list[str]:
    """The instances of ``provider`` (names checked: they are written into the SQL)."""
    return [check_instance(name) for name in instances if provider_of(name) == provider]


def _listed(instances: Sequence[str], provider: str) -> str:
    """The instances of ``provider`` as an SQL list, for ``provider IN ...``."""
    return "(" + (", ".join(f"'{name}'" for name in _of(instances, provider)) or "NULL") + ")"


def _union(selects: Sequence[str]) -> str:
    return "\nUNION ALL\n".join(selects)


def _serp_searches(instances: Sequence[str]) -> str:
    images = [
        f"""SELECT '{name}' AS provider, date, task_id AS serp_id,
       coalesce(image_url, keyword) AS target, CAST(location_code AS VARCHAR) AS location,
       language_code AS language, 'desktop' AS device, datetime AS searched_at
FROM {name}_serps"""
        for name in _of(instances, dataforseo.PROVIDER)
    ]
    keywords = [
        f"""SELECT '{name}' AS provider, date, id AS serp_id, keyword AS target, location,
       language, device, coalesce(scraped_at, created_at) AS searched_at
FROM {name}_serps"""
        for name in _of(instances, semscraper.PROVIDER)
    ]
    return _union([*images, *keywords])


def _serp_items(instances: Sequence[str]) -> str:
    images = [
        f"""SELECT '{name}' AS provider, date, task_id AS serp_id, item_index,
       CAST(NULL AS INTEGER) AS block_index, type AS item_type, rank_group, rank_absolute,
       coalesce({_host("url")}, nullif(domain, '')) AS domain, url, title, description
FROM {name}_organic
UNION ALL
SELECT '{name}', date, task_id, item_index, NULL, type, rank_group, rank_absolute,
       {_host("url")}, url, title, NULL
FROM {name}_images
UNION ALL
SELECT '{name}', date, task_id, item_index, NULL, type, rank_group, rank_absolute,
       coalesce({_host("item->>'url'")}, nullif(item->>'domain', '')), item->>'url',
       item->>'title', item->>'description'
FROM {name}_other_items"""
        for name in _of(instances, dataforseo.PROVIDER)
    ]
    keywords = [
        f"""SELECT '{name}', date, id, item_index, block_index, block_type,
       row_number() OVER (PARTITION BY date, id, block_type
                          ORDER BY rank_serp, block_index, item_index),
       rank_serp, coalesce({_host("url")}, nullif(domain, '')), url, nullif(title, ''),
       nullif(description, '')
FROM {name}_items"""
        for name in _of(instances, semscraper.PROVIDER)
    ]
    return f"""
WITH items AS (
{_union([*images, *keywords])})
SELECT s.provider, s.date, s.target, s.location, s.language, s.device, i.item_type,
       i.rank_group, i.rank_absolute, i.domain, i.url, i.title, i.description, s.serp_id,
       i.block_index, i.item_index
FROM items i
JOIN serp_searches s ON s.provider = i.provider AND s.date = i.date
                     AND s.serp_id = i.serp_id"""


def _collected_days(within: str = "true") -> str:
    """A target's collected days (where ``within`` holds of ``date``), each with the collected
    day before it."""
    return f"""
collected AS (SELECT DISTINCT {", ".join(_TARGET_KEYS)}, date FROM serp_searches
              WHERE {within.format(date="date")}),
days AS (
    SELECT *, lag(date) OVER (PARTITION BY {", ".join(_TARGET_KEYS)} ORDER BY date)
              AS previous_date
    FROM collected)"""


RANK_HISTORY = DerivedView(
    "rank_history",
    "Per target, domain and day: the domain's best organic rank, and its change "
    "from the target's previous collected day.",
    f"""
WITH organic AS (
    SELECT {", ".join(_TARGET_KEYS)}, domain, date, min(rank_group) AS rank,
           min(rank_absolute) AS rank_absolute, arg_min(url, rank_group) AS url
    FROM serp_items
    WHERE item_type = 'organic' AND domain IS NOT NULL
    GROUP BY ALL),
{_collected_days()}
SELECT o.provider, o.target, o.location, o.language, o.device, o.domain, o.date, o.rank,
       o.rank_absolute, o.url, d.previous_date, p.rank AS previous_rank,
       p.rank - o.rank AS rank_change,
       CASE WHEN d.previous_date IS NOT NULL THEN p.rank IS NULL END AS is_new
FROM organic o
JOIN days d ON {_same_target("d", "o")} AND d.date = o.date
LEFT JOIN organic p ON {_same_target("p", "o")} AND p.domain = o.domain
                    AND p.date = d.previous_date""",
)


def _image_hosts(instances: Sequence[str]) -> str:
    return f"""
WITH pages AS (
    SELECT {", ".join(_TARGET_KEYS)}, date, domain, url, min(rank_group) AS rank
    FROM serp_items
    WHERE provider IN {_listed(instances, dataforseo.PROVIDER)} AND item_type = 'organic'
      AND url IS NOT NULL
    GROUP BY ALL),
{_collected_days()}
SELECT p.target AS image_url, p.location, p.language, p.date, p.domain, p.url, p.rank,
       d.previous_date,
       CASE WHEN d.previous_date IS NOT NULL THEN NOT EXISTS (
           SELECT 1 FROM pages q WHERE {_same_target("q", "p")} AND q.date = d.previous_date
                                   AND q.url = p.url) END AS is_new_page,
       CASE WHEN d.previous_date IS NOT NULL THEN NOT EXISTS (
           SELECT 1 FROM pages q WHERE {_same_target("q", "p")} AND q.date = d.previous_date
                                   AND q.domain IS NOT DISTINCT FROM p.domain) END
           AS is_new_domain, p.provider
FROM pages p
JOIN days d ON {_same_target("d", "p")} AND d.date = p.date"""


SERP_FEATURES = DerivedView(
    "serp_features",
    "Per target, day and item type (DataForSEO type, SemScraper block type): "
    "how many items of it the SERP shows, and the first position it takes.",
    f"""
SELECT {", ".join(_TARGET_KEYS)}, date, item_type, count(*) AS items,
       count(DISTINCT serp_id) AS serps, min(rank_absolute) AS first_rank_absolute
FROM serp_items
GROUP BY ALL""",
)

DOMAIN_VISIBILITY = DerivedView(
    "domain_visibility",
    "Per provider, day and domain: its share of the top-10 organic "
    "positions of that provider's SERPs of the day (share = top10_positions / "
    "all_top10_positions; positions without a domain count in the total). Compare domains "
    "within one provider.",
    f"""
WITH top AS (
    SELECT provider, date, {", ".join(_TARGET_KEYS[1:])}, serp_id, domain, rank_group
    FROM serp_items
    WHERE item_type = 'organic' AND rank_group <= 10),
totals AS (
    SELECT provider, date, count(*) AS all_positions, count(DISTINCT serp_id) AS serps
    FROM top GROUP BY ALL)
SELECT t.provider, t.date, t.domain, count(*) AS top10_positions, any_value(all_positions)
       AS all_top10_positions, count(*) / any_value(all_positions) AS share,
       count(DISTINCT serp_id) AS serps_present, any_value(serps) AS serps,
       min(rank_group) AS best_rank, avg(rank_group) AS average_rank
FROM top t
JOIN totals USING (provider, date)
WHERE t.domain IS NOT NULL
GROUP BY t.provider, t.date, t.domain""",
)


def _target_key(provider: str, target: str, instances: Sequence[str]) -> str:
    """How ``my_targets`` keys a target (``my_sites.config.target_key``): a keyword without
    case and extra spaces, an image by its URL."""
    return (
        f"CASE WHEN {provider} IN {_listed(instances, semscraper.PROVIDER)} THEN "
        f"lower(regexp_replace(trim({target}), '\\s+', ' ', 'g')) ELSE {target} END"
    )


def _on_domain(host: str, domain: str, with_subdomains: str) -> str:
    """Whether ``host`` is ``domain`` (or, ``with_subdomains``, one of its subdomains); the
    settings' domains are lower case, a provider's domain field may not be."""
    return (
        f"(lower({host}) = {domain} OR ({with_subdomains} AND "
        f"ends_with(lower({host}), '.' || {domain})))"
    )


_KEYS = ("group_name", *_TARGET_KEYS, "domain")
_SAME_MINE = " AND ".join(f"{{a}}.{key} IS NOT DISTINCT FROM {{b}}.{key}" for key in _KEYS)


def _my_ranks(within: str, instances: Sequence[str]) -> str:
    """my_ranks over the days where ``within`` holds (of ``date``)."""
    return f"""
WITH mine AS (
    SELECT t.provider, t.target_key, t.group_name, d.domain, d.with_subdomains
    FROM my_targets t JOIN my_domains d USING (group_name)),
collected AS (
    SELECT DISTINCT m.group_name, s.provider, s.target, s.location, s.language, s.device,
           m.domain, m.with_subdomains, s.date
    FROM serp_searches s
    JOIN mine m ON m.provider = s.provider
               AND m.target_key = {_target_key("s.provider", "s.target", instances)}
    WHERE {within.format(date="s.date")}),
found AS (
    SELECT c.group_name, c.provider, c.target, c.location, c.language, c.device, c.domain,
           c.date, min(i.rank_group) AS rank, min(i.rank_absolute) AS rank_absolute,
           arg_min(i.url, (i.rank_group, i.url)) AS url
    FROM collected c
    JOIN serp_items i ON {_same_target("i", "c")} AND i.date = c.date
                      AND i.item_type = 'organic'
                      AND {_on_domain("i.domain", "c.domain", "c.with_subdomains")}
    WHERE {within.format(date="i.date")}
    GROUP BY ALL),
days AS (
    SELECT c.group_name, c.provider, c.target, c.location, c.language, c.device, c.domain,
           c.date, f.rank, f.rank_absolute, f.url,
           lag(c.date) OVER w AS previous_date, lag(f.rank) OVER w AS previous_rank,
           lag(f.url) OVER w AS previous_url
    FROM collected c
    LEFT JOIN found f ON {_SAME_MINE.format(a="f", b="c")} AND f.date = c.date
    WINDOW w AS (PARTITION BY c.group_name, c.provider, c.target, c.location, c.language,
                              c.device, c.domain ORDER BY c.date))
SELECT *, previous_rank - rank AS rank_change,
       CASE WHEN previous_date IS NOT NULL THEN
           coalesce(rank <= {TOP}, false) AND NOT coalesce(previous_rank <= {TOP}, false)
       END AS entered_top10,
       CASE WHEN previous_date IS NOT NULL THEN
           coalesce(previous_rank <= {TOP}, false) AND NOT coalesce(rank <= {TOP}, false)
       END AS left_top10,
       CASE WHEN previous_date IS NOT NULL THEN previous_rank IS NULL AND rank IS NOT NULL
       END AS entered_serp,
       CASE WHEN previous_date IS NOT NULL THEN previous_rank IS NOT NULL AND rank IS NULL
       END AS left_serp
FROM days"""


def _image_reuse(within: str, instances: Sequence[str]) -> str:
    """image_reuse over the days where ``within`` holds (of ``date``)."""
    searches = _listed(instances, dataforseo.PROVIDER)
    return f"""
WITH images AS (
    SELECT provider, target_key AS image_url, group_name FROM my_targets
    WHERE provider IN {searches}),
allowed AS (
    SELECT image_url, domain, with_subdomains FROM image_allowed_domains
    UNION
    SELECT i.image_url, d.domain, d.with_subdomains
    FROM images i JOIN my_domains d USING (group_name)),
pages AS (
    SELECT m.group_name, s.target AS image_url, s.location, s.language, s.date, s.domain,
           s.url, min(s.rank_group) AS rank, s.provider
    FROM serp_items s JOIN images m ON s.provider = m.provider AND s.target = m.image_url
    WHERE s.provider IN {searches} AND s.item_type = 'organic'
      AND s.url IS NOT NULL AND {within.format(date="s.date")}
      AND NOT EXISTS (SELECT 1 FROM allowed a WHERE a.image_url = s.target
                      AND {_on_domain("s.domain", "a.domain", "a.with_subdomains")})
    GROUP BY ALL),
{_collected_days(within)},
firsts AS (
    SELECT provider, target, location, language, min(date) AS first_day FROM days
    WHERE provider IN {searches} GROUP BY ALL)
SELECT p.*, d.previous_date,
       min(p.date) OVER (PARTITION BY p.image_url, p.location, p.language, p.url)
           AS first_seen,
       min(p.date) OVER (PARTITION BY p.image_url, p.location, p.language, p.domain)
           AS domain_first_seen,
       CASE WHEN p.date > f.first_day THEN first_seen = p.date END AS is_new_page,
       CASE WHEN p.date > f.first_day THEN domain_first_seen = p.date END AS is_new_domain
FROM pages p
JOIN days d ON d.provider = p.provider AND d.target = p.image_url
            AND d.location IS NOT DISTINCT FROM p.location
            AND d.language IS NOT DISTINCT FROM p.language AND d.date = p.date
JOIN firsts f ON f.provider = p.provider AND f.target = p.image_url
             AND f.location IS NOT DISTINCT FROM p.location
             AND f.language IS NOT DISTINCT FROM p.language"""


_EVERY_DAY = "true"
_WINDOW = "{date} BETWEEN first_day AND last_day"
_RANKS = (
    "Per target, collected day and my domain ([[sites]] of the target's group): my best "
    "organic rank (NULL when absent) and its URL, the previous collected day's, the "
    "change (positive: up), and whether it entered or left the top 10 or the SERP (NULL "
    "on the target's first collected day)"
)
_REUSE = (
    "Search by image: per tracked image and day, each page (and its domain) showing the "
    "image on a domain that is not among its allowed ones (its allowed_domains and its "
    "group's sites), when it was first seen, and whether page and domain are new that "
    "day (NULL on the image's first collected day)"
)


def _state_counts(known: str) -> str:
    """One count per task state, the pending ones (intent, posted) summed as ``pending``:
    derived from the ledger's states, so a new state gets its column. NULL (not known) where
    the SQL condition ``known`` does not hold."""
    pending = ", ".join(f"'{state}'" for state in sorted(PENDING_STATES))
    counts = [
        (f"state = '{state}'", state.value) for state in TaskState if state not in PENDING_STATES
    ]
    counts.append((f"state IN ({pending})", "pending"))
    return ", ".join(
        f"CASE WHEN {known} THEN count(*) FILTER (WHERE {where}) END AS {name}"
        for where, name in counts
    )


def _spend_of(provider: str, currency: str) -> str:
    """A provider's days: from its tasks table (the ledger's), else, for a day that has none
    (an imported day), from the latest version of each response: its tasks and cost, how
    each ended NULL (not known). One aggregation by day over both, so that a query's date
    filter reaches both scans."""
    ledger = "count(*) FILTER (WHERE source = 'ledger') > 0"
    return f"""
SELECT '{provider}' AS provider, date,
       CASE WHEN {ledger} THEN count(*) FILTER (WHERE source = 'ledger')
            ELSE count(*) END AS tasks,
       round(CASE WHEN {ledger} THEN sum(cost) FILTER (WHERE source = 'ledger')
                  ELSE sum(cost) END, 8) AS cost,
       '{currency}' AS currency, {_state_counts(ledger)},
       CASE WHEN {ledger} THEN 'ledger' ELSE 'responses' END AS counted_from
FROM (SELECT date, 'ledger' AS source, cost, state FROM {provider}_tasks
      UNION ALL
      SELECT date, 'responses', cost, NULL FROM {provider}_responses
      QUALIFY row_number() OVER (PARTITION BY date, task_id
                                 ORDER BY fetched_at DESC, content_hash DESC) = 1)
GROUP BY date"""


def _task_key(tables: ProviderTables, table: str) -> str:
    # A flattened table's first column is its task's id (what ``with_lineage`` keys on).
    return tables.flat_schemas[table].names[0]


def _loads_of(provider: str, tables: ProviderTables) -> str:
    """One provider instance's versions, each with the rows flattened from it (serps, items):
    only a task's latest version is flattened, so an earlier load's replaced versions count 0."""
    items = "\n      UNION ALL ".join(
        f"SELECT {_task_key(tables, table)} AS task_id, content_hash FROM {provider}_{table}"
        for table in tables.item_tables
    )
    serps_key = _task_key(tables, "serps")
    return f"""
SELECT '{provider}' AS provider, r.date, r.loaded_at, r.source, r.fetched_at, r.task_id,
       coalesce(s.n, 0) AS serp_rows, coalesce(i.n, 0) AS item_rows
FROM {provider}_responses r
LEFT JOIN (SELECT date, {serps_key} AS task_id, content_hash, count(*) AS n
           FROM {provider}_serps GROUP BY ALL) s USING (date, task_id, content_hash)
LEFT JOIN (SELECT date, task_id, content_hash, count(*) AS n
           FROM ({items}) GROUP BY ALL) i USING (date, task_id, content_hash)"""


_CURRENCY = {dataforseo.PROVIDER: dataforseo.CURRENCY, semscraper.PROVIDER: semscraper.CURRENCY}


def views(known: Mapping[str, ProviderTables]) -> tuple[DerivedView, ...]:
    """The ready-made views over the provider instances ``known`` (name -> its tables, as
    ``catalog.instances`` gives them), in creation order (a view after those it reads)."""
    instances = list(known)
    providers = {name: provider_of(check_instance(name)) or "" for name in instances}
    return (
        DerivedView(
            "serp_searches",
            "One row per SERP collected, of any provider: its target, location, language, "
            "device and day (provider: the provider instance).",
            _serp_searches(instances),
        ),
        DerivedView(
            "serp_items",
            "One row per item of any provider's SERPs, ranks and types mapped to "
            "DataForSEO's (see serp_etl/analysis.py).",
            _serp_items(instances),
        ),
        RANK_HISTORY,
        DerivedView(
            "image_hosts",
            "Search by image: per tracked image and day, each page (and its domain) showing "
            "the image, and whether page and domain are new since the image's previous "
            "collected day.",
            _image_hosts(instances),
        ),
        SERP_FEATURES,
        DOMAIN_VISIBILITY,
        DerivedView(
            "spend_health",
            "Per provider and day: the tasks of the day's ledger, what they cost, and how each "
            "ended (fetched, empty, failed, expired, ..., pending); for a day the ledger never "
            "saw (imported), the tasks and cost its responses carry, how each ended NULL "
            "(counted_from = 'responses').",
            _union([_spend_of(name, _CURRENCY[provider]) for name, provider in providers.items()]),
        ),
        DerivedView("my_ranks", f"{_RANKS}.", _my_ranks(_EVERY_DAY, instances)),
        DerivedView("image_reuse", f"{_REUSE}.", _image_reuse(_EVERY_DAY, instances)),
        # The same over the days from first_day to last_day only, "previous" and "first seen"
        # within them: what a day's alerts read (``my_sites.alerts``), in a time that does not
        # grow with the history, as the views' does.
        DerivedView(
            "my_ranks_between",
            f"{_RANKS}, over the days from first_day to last_day: "
            "SELECT * FROM my_ranks_between(DATE '2026-01-01', DATE '2026-01-31').",
            _my_ranks(_WINDOW, instances),
            ("first_day", "last_day"),
        ),
        DerivedView(
            "image_reuse_between",
            f"{_REUSE}, over the days from first_day to last_day (first seen within them).",
            _image_reuse(_WINDOW, instances),
            ("first_day", "last_day"),
        ),
        DerivedView(
            "my_alerts",
            "Every provider's alerts (<provider>_alerts): one row per notable change of my "
            "sites and images on a day (see serp_etl/my_sites/alerts.py).",
            " UNION ALL BY NAME ".join(
                f"SELECT * FROM {name}_{ALERTS_TABLE}" for name in providers
            ),
        ),
        DerivedView(
            "loads",
            "One row per load of a provider's day into the warehouse (a collection's publish "
            "of the responses, or an import): when it ran, how the responses arrived, how many "
            "versions and tasks it wrote, when they were received, and how many serps and item "
            "rows are flattened from them now (each flattened row's content_hash names its "
            "version). loaded_at NULL: versions written before serp-etl recorded loads.",
            f"""
SELECT provider, date, loaded_at,
       CASE WHEN bool_or(source LIKE 'import:%') THEN 'import' ELSE 'collection' END AS kind,
       list_sort(list(DISTINCT source)) AS sources,
       count(*) AS responses, count(DISTINCT task_id) AS tasks,
       min(fetched_at) AS first_fetched_at, max(fetched_at) AS last_fetched_at,
       CAST(sum(serp_rows) AS BIGINT) AS serp_rows,
       CAST(sum(item_rows) AS BIGINT) AS item_rows
FROM ({_union([_loads_of(name, tables) for name, tables in known.items()])})
GROUP BY provider, date, loaded_at""",
        ),
    )
