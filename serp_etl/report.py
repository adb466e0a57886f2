"""A provider's daily report: one self-contained HTML file (inline SVG charts, inline CSS, no
script, nothing fetched when it is opened) and a short markdown summary for the Dagster UI.

Everything it shows is read from the ready-made views (``serp_etl.analysis``) with bound
parameters. It opens with "My sites": my domains' ranks and moves (``my_ranks``), new sites
showing my images (``image_reuse``) and the day's alerts (``my_alerts``); then rank history
lines of each target's leading domains over the last ``HISTORY_DAYS`` collected days, the
pages and domains newly showing each tracked image, spend per day and the day's task health.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import TYPE_CHECKING

from serp_etl.core.money import money
from serp_etl.core.wording import count
from serp_etl.my_sites.alerts import lookback, new_hosts
from serp_etl.providers.instances import provider_of

if TYPE_CHECKING:
    import duckdb


HISTORY_DAYS = 30
LINES_PER_TARGET = 5  # the domains best ranked on the day
_COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e"]
_STATES = (
    "fetched",
    "empty",
    "failed",
    "expired",
    "undecodable",
    "exhausted",
    "rejected",
    "unposted",
    "pending",
)


@dataclass
class Report:
    provider: str
    day: str
    html: str = ""
    markdown: str = ""
    figures: dict = field(default_factory=dict)  # what the summary says, as numbers


def _rows(connection: duckdb.DuckDBPyConnection, sql: str, params: list) -> list[dict]:
    cursor = connection.execute(sql, params)
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def build(connection: duckdb.DuckDBPyConnection, provider: str, day: str) -> Report:
    """The report of ``provider`` for ``day``, from the views ``connection`` sees."""
    first = (date.fromisoformat(day) - timedelta(days=HISTORY_DAYS - 1)).isoformat()
    window = [provider, first, day]
    health = _rows(
        connection, "SELECT * FROM spend_health WHERE provider = ? AND date = ?", [provider, day]
    )
    spend = _rows(
        connection,
        "SELECT date, cost, currency, tasks FROM spend_health "
        "WHERE provider = ? AND date BETWEEN ? AND ? ORDER BY date",
        window,
    )
    searches = _rows(
        connection,
        "SELECT count(*) AS serps FROM serp_searches WHERE provider = ? AND date = ?",
        [provider, day],
    )[0]["serps"]
    items = _rows(
        connection,
        "SELECT count(*) AS items FROM serp_items WHERE provider = ? AND date = ?",
        [provider, day],
    )[0]["items"]
    history = _rows(
        connection,
        "SELECT target, location, language, device, domain, date, rank "
        "FROM rank_history WHERE provider = ? AND date BETWEEN ? AND ? "
        "ORDER BY target, location, language, device, date",
        window,
    )
    new_pages = _rows(
        connection,
        "SELECT image_url, location, language, domain, url, rank, "
        "is_new_domain FROM image_hosts WHERE provider = ? AND date = ? "
        "AND is_new_page ORDER BY image_url, location, language, rank, url",
        [provider, day],
    )
    # Images whose day this is their first collected one: nothing to compare with yet.
    first_days = _rows(
        connection,
        "SELECT count(DISTINCT image_url) AS n FROM image_hosts "
        "WHERE provider = ? AND date = ? AND is_new_page IS NULL",
        [provider, day],
    )[0]["n"]
    # Over the days the day's alerts compare with.
    my_ranks = _rows(
        connection,
        "SELECT group_name, target, location, language, device, "
        "domain, rank, previous_rank, rank_change, url, previous_date FROM "
        "my_ranks_between(?, ?) WHERE provider = ? AND date = ? AND (rank IS NOT "
        "NULL OR previous_rank IS NOT NULL) ORDER BY group_name, target, "
        "location, language, device, domain",
        [*lookback(day), provider, day],
    )
    hosts = new_hosts(connection, provider, day)
    alerts = _rows(
        connection,
        "SELECT message FROM my_alerts WHERE provider = ? AND date = ? ORDER BY kind, message",
        [provider, day],
    )
    today = health[0] if health else {}
    report = Report(provider, day)
    report.figures = {
        "serps": searches,
        "items": items,
        "tasks": today.get("tasks", 0),
        "cost": today.get("cost") or 0.0,
        "currency": today.get("currency", ""),
        **{state: today.get(state, 0) for state in _STATES},
        "new_pages": len(new_pages),
        "images_on_first_day": first_days,
        "new_domains": len(
            {
                (p["image_url"], p["location"], p["language"], p["domain"])
                for p in new_pages
                if p["is_new_domain"]
            }
        ),
        "my_ranked": sum(r["rank"] is not None for r in my_ranks),
        "my_moves": sum(
            bool(r["rank_change"]) or (r["rank"] is None) != (r["previous_rank"] is None)
            for r in my_ranks
            if r["previous_date"] is not None
        ),
        "my_new_hosts": len(hosts),
        "alerts": len(alerts),
    }
    report.markdown = _markdown(report.figures, provider, day)
    report.html = _page(
        report,
        _my_sites(my_ranks, hosts, alerts, provider),
        _rank_sections(history, day),
        _new_hosts(new_pages, first_days) if provider_of(provider) == "dataforseo" else "",
        _spend_chart(spend),
    )
    return report


def _markdown(figures: dict, provider: str, day: str) -> str:
    lines = [
        f"**My sites**: {figures['my_ranked']} of my domains ranked, "
        f"{figures['my_moves']} moved since the previous collected day"
        + (
            f", {figures['my_new_hosts']} new sites showing my images"
            if provider_of(provider) == "dataforseo"
            else ""
        )
        + f"; {count(figures['alerts'], 'alert')}.",
        f"**{provider}, {day}**: {figures['serps']} SERPs and {figures['items']} items "
        f"from {figures['tasks']} tasks, {money(figures['cost'], figures['currency'])}.",
        "Health: "
        + (
            ", ".join(
                f"{state} {figures[state]}"
                for state in _STATES
                if figures[state] or state in ("fetched", "pending")
            )
            if figures["fetched"] is not None
            else "not known (the day was imported: its ledger never saw its tasks)"
        )
        + ".",
    ]
    if provider_of(provider) == "dataforseo":
        lines.append(
            f"New since the previous collected day: {figures['new_pages']} pages, "
            f"{figures['new_domains']} domains showing a tracked image"
            + (
                f" ({figures['images_on_first_day']} image(s) collected for the first "
                "time: nothing to compare with yet)"
                if figures["images_on_first_day"]
                else ""
            )
            + "."
        )
    return "\n\n".join(lines)


def _move(row: dict) -> str:
    before, after = row["previous_rank"], row["rank"]
    if row["previous_date"] is None:
        return "first day"
    if before is None or after is None:
        return "entered" if before is None else "left"
    change = before - after
    return "=" if change == 0 else f"▲ {change}" if change > 0 else f"▼ {-change}"


def _my_sites(ranks: list[dict], hosts: list[dict], alerts: list[dict], provider: str) -> str:
    """The section the report opens with: my domains' ranks and moves, new hosts of my
    images, the day's alerts."""
    parts = ["<h2>My sites</h2>"]
    if alerts:
        parts.append(
            "<p><b>Alerts</b></p><ul>"
            + "".join(f"<li>{html.escape(a['message'])}</li>" for a in alerts)
            + "</ul>"
        )
    if ranks:
        rows = "".join(
            f"<tr><td>{html.escape(r['domain'])}</td><td>{html.escape(r['target'])} <small>"
            f"{html.escape(' · '.join(str(r[k]) for k in ('location', 'language', 'device')))}"
            f"</small></td><td>{'' if r['rank'] is None else r['rank']}</td>"
            f"<td>{'' if r['previous_rank'] is None else r['previous_rank']}</td>"
            f"<td>{html.escape(_move(r))}</td><td>{html.escape(r['url'] or '')}</td></tr>"
            for r in ranks
        )
        parts.append(
            "<table><tr><th>my domain</th><th>target</th><th>rank</th>"
            "<th>before</th><th>move</th><th>page</th></tr>" + rows + "</table>"
        )
    else:
        parts.append(
            "<p>No domain of mine ranked for a target of this provider on the day "
            "or the one before (my domains: [[sites]] in the targets file).</p>"
        )
    if provider_of(provider) == "dataforseo":
        if hosts:
            parts.append(
                "<p><b>New sites showing my images</b> (not among their allowed "
                "domains)</p><table><tr><th>image</th><th>site</th><th>page</th>"
                "<th>rank</th></tr>"
                + "".join(
                    f"<tr><td>{html.escape(h['image_url'])}</td>"
                    f"<td>{html.escape(h['domain'] or '')}</td>"
                    f"<td>{html.escape(h['url'])}</td><td>{h['rank']}</td></tr>"
                    for h in hosts
                )
                + "</table>"
            )
        else:
            parts.append("<p>No new site showed my images.</p>")
    return "".join(parts)


def _line_chart(lines: dict[str, list[tuple[int, int]]], days: list[str]) -> str:
    """Ranks over days, rank 1 at the top; one polyline (and its dots) per domain."""
    width, height, left, right, top, bottom = 640, 220, 40, 170, 14, 28
    worst = max((rank for points in lines.values() for _, rank in points), default=1)
    span_x = max(len(days) - 1, 1)

    def x(index: int) -> float:
        return left + (width - left - right) * index / span_x

    def y(rank: int) -> float:
        return top + (height - top - bottom) * (rank - 1) / max(worst - 1, 1)

    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img">',
        f'<line x1="{left}" y1="{height - bottom}" x2="{width - right}" '
        f'y2="{height - bottom}" class="axis"/>',
    ]
    for rank in sorted({1, worst, (1 + worst) // 2}):
        parts.append(
            f'<text x="{left - 6}" y="{y(rank) + 4:.1f}" class="tick" '
            f'text-anchor="end">{rank}</text>'
        )
    for index in sorted({0, len(days) - 1}):
        parts.append(
            f'<text x="{x(index):.1f}" y="{height - 8}" class="tick" '
            f'text-anchor="middle">{days[index][5:]}</text>'
        )
    for n, (domain, points) in enumerate(lines.items()):
        colour = _COLOURS[n % len(_COLOURS)]
        coordinates = " ".join(f"{x(i):.1f},{y(r):.1f}" for i, r in points)
        parts.append(
            f'<polyline points="{coordinates}" fill="none" stroke="{colour}" stroke-width="2"/>'
        )
        for i, r in points:
            parts.append(
                f'<circle cx="{x(i):.1f}" cy="{y(r):.1f}" r="3" fill="{colour}">'
                f"<title>{html.escape(domain)}: rank {r} on {days[i]}</title></circle>"
            )
        parts.append(
            f'<text x="{width - right + 8}" y="{top + 14 * n + 4}" class="legend" '
            f'fill="{colour}">{html.escape(domain)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _rank_sections(history: list[dict], day: str) -> str:
    targets: dict[tuple, list[dict]] = {}
    for row in history:
        targets.setdefault(
            (row["target"], row["location"], row["language"], row["device"]), []
        ).append(row)
    sections = []
    for (target, location, language, device), rows in targets.items():
        days = sorted({str(row["date"]) for row in rows})
        leaders = sorted(
            (row for row in rows if str(row["date"]) == day), key=lambda row: row["rank"]
        )[:LINES_PER_TARGET]
        if not leaders:
            continue  # not collected on the day
        lines = {
            row["domain"]: [
                (days.index(str(r["date"])), r["rank"])
                for r in rows
                if r["domain"] == row["domain"]
            ]
            for row in leaders
        }
        sections.append(
            f"<h3>{html.escape(target)} <small>{html.escape(str(location))} · "
            f"{html.escape(str(language))} · {html.escape(str(device))}</small>"
            f"</h3>{_line_chart(lines, days)}"
        )
    return "".join(sections) or "<p>No SERP collected on this day.</p>"


def _new_hosts(pages: list[dict], images_on_first_day: int) -> str:
    first = (
        f"<p>{images_on_first_day} tracked image(s) were collected for the first time on "
        "this day: their new hosts show from their second collected day on.</p>"
        if images_on_first_day
        else ""
    )
    if not pages:
        return "<h2>New hosts of each image</h2>" + (
            first
            or "<p>No page showed a tracked image that did not on its previous collected day.</p>"
        )
    rows = "".join(
        f"<tr><td>{html.escape(p['image_url'])}</td><td>{html.escape(p['domain'] or '')}"
        f"{' <b>new domain</b>' if p['is_new_domain'] else ''}</td>"
        f'<td><a href="{html.escape(p["url"])}">{html.escape(p["url"])}</a></td>'
        f"<td>{p['rank']}</td></tr>"
        for p in pages
    )
    return (
        "<h2>New hosts of each image</h2><p>Pages showing a tracked image that did not on "
        f"its previous collected day.</p>{first}<table><tr><th>image</th><th>domain</th>"
        f"<th>page</th><th>rank</th></tr>{rows}</table>"
    )


def _spend_chart(spend: list[dict]) -> str:
    if not spend:
        return "<p>No task in the last days.</p>"
    width, height, bar_area = 640, 170, 120
    most = max(row["cost"] or 0 for row in spend) or 1
    step = (width - 20) / len(spend)
    bars = []
    for n, row in enumerate(spend):
        tall = bar_area * (row["cost"] or 0) / most
        bars.append(
            f'<rect x="{10 + n * step:.1f}" y="{20 + bar_area - tall:.1f}" '
            f'width="{max(step - 4, 1):.1f}" height="{tall:.1f}" class="bar">'
            f"<title>{row['date']}: {row['cost']} {html.escape(row['currency'])}, "
            f"{row['tasks']} tasks</title></rect>"
        )
        middle = 10 + n * step + (step - 4) / 2
        bars.append(
            f'<text x="{middle:.1f}" y="{16 + bar_area - tall:.1f}" class="tick" '
            f'text-anchor="middle">{row["cost"] or 0:.4g}</text>'
        )
    return (
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img">{"".join(bars)}'
        f'<text x="10" y="{height - 8}" class="tick">{spend[0]["date"]}</text>'
        f'<text x="{width - 10}" y="{height - 8}" class="tick" text-anchor="end">'
        f"{spend[-1]['date']}</text></svg>"
    )


_STYLE = """body{font:14px system-ui,sans-serif;margin:2em auto;max-width:860px;color:#222}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:3px 8px;
text-align:left;font-size:13px}.chart{width:100%;height:auto;background:#fafafa}
.axis{stroke:#999}.tick{font-size:11px;fill:#555}.legend{font-size:11px;font-weight:bold}
.bar{fill:#1f77b4}
h3 small{font-weight:normal;color:#666}"""


def _page(report: Report, mine: str, ranks: str, hosts: str, spend: str) -> str:
    figures = report.figures
    health = "".join(
        f"<tr><th>{state}</th><td>"
        f"{'not known (imported)' if figures[state] is None else figures[state]}"
        "</td></tr>"
        for state in _STATES
    )
    title = f"serp-etl {report.provider} report, {report.day}"
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>"
        f"<h1>{html.escape(title)}</h1>{mine}"
        f'<p id="summary">{figures["serps"]} SERPs, {figures["items"]} items, '
        f"{figures['tasks']} tasks, cost "
        f"{html.escape(money(figures['cost'], figures['currency']))}.</p>"
        f"<h2>Health of the day's tasks</h2><table>{health}</table>"
        f"<h2>Spend per day</h2>{spend}"
        f"<h2>Rank history</h2><p>The domains ranked best on the day, their organic rank "
        f"over the last {HISTORY_DAYS} days (1 at the top).</p>{ranks}{hosts}"
        "</body></html>"
    )
