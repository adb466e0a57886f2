"""serp-etl: import archived responses, query the warehouse, receive callbacks, run the
sandbox.

Each command imports what it needs when it runs: an import, say, never loads the HTTP client,
DuckDB or the web server (start-up is part of every import's time).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import logging
import os
import shutil
import sys
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.exc import DBAPIError

from serp_etl.core.archive import DEFAULT_MAX_DOCUMENT_MB, ImportFailed
from serp_etl.core.mode import ModeError, claim_mode
from serp_etl.core.warehouse import Warehouse, check_partition, default_data_dir
from serp_etl.core.wording import count
from serp_etl.providers.credentials import run_mode
from serp_etl.providers.instances import InstanceNameError, check_instance, provider_of
from serp_etl.providers.semscraper.settings import HMAC_KEY_ENV
from serp_etl.state.database import StateUnreadable, describe_location
from serp_etl.state.ledger import inbox_bodies, open_ledger
from serp_etl.state.location import state_location

# provider -> the module whose import_archives loads its saved responses
IMPORTERS = {
    "dataforseo": "serp_etl.providers.dataforseo.archive",
    "semscraper": "serp_etl.providers.semscraper.archive",
}


def _instance(value: str) -> str:
    try:
        return check_instance(value)
    except InstanceNameError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _date(value: str) -> str:
    try:
        return check_partition(value)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def serve_until_interrupted(server, banner: str) -> int:
    print(banner, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


def _sandboxes(data_dir: Path) -> dict:
    from serp_etl.sandbox.dataforseo.app import DataForSEOSandbox
    from serp_etl.sandbox.semscraper.app import SemScraperSandbox

    return {
        "dataforseo": DataForSEOSandbox(data_dir / "sandbox" / "dataforseo.sqlite"),
        "semscraper": SemScraperSandbox(data_dir / "sandbox" / "semscraper.sqlite"),
    }


def claim_run_mode(data_dir: Path) -> str | None:
    """Claim the data dir for this process's mode; the refusal as a one-line message."""
    try:
        claim_mode(data_dir, run_mode())
    except (ModeError, StateUnreadable) as error:
        return f"refused: {error}"
    return None


def cmd_import(args: argparse.Namespace) -> int:
    refusal = claim_run_mode(args.data_dir)
    if refusal:
        print(refusal, file=sys.stderr)
        return 2
    from serp_etl.catalog import refresh_views
    from serp_etl.core.views import ViewsError

    warehouse = Warehouse(args.data_dir)
    importer = importlib.import_module(IMPORTERS[provider_of(args.provider) or ""]).import_archives
    try:
        with open_ledger(args.data_dir) as ledger:
            report = importer(
                [Path(p) for p in args.files],
                args.date,
                ledger,
                warehouse,
                scope=args.provider,
                keep_good=args.keep_good,
                max_document_mb=args.max_document_mb,
                progress=sys.stderr,
            )
    except (ImportFailed, OSError, DBAPIError) as error:  # a full disk, a worker killed...
        print(import_failure(error, Path(args.data_dir)), file=sys.stderr)
        return 1
    for rejected in report.rejected:
        print(f"rejected {rejected.path}: {rejected.reason}", file=sys.stderr)
    print(
        f"{count(report.imported_files, 'file')} imported, {len(report.rejected)} rejected; "
        f"{count(report.new_responses, 'new response')} in {args.provider} "
        f"date={args.date}"
    )
    if report.rejects_file:
        print(
            f"{count(report.rejected_documents, 'document')} rejected, each with its line "
            "and reason "
            f"in {report.rejects_file}",
            file=sys.stderr,
        )
    for table, rows in report.rows.items():
        print(f"  {args.provider}_{table}: {rows} rows")
    if report.rows:
        try:
            refresh_views(args.data_dir)
        except ViewsError as error:  # what landed is safe; only the views file is behind
            print(f"the views file was not refreshed: {error}", file=sys.stderr)
    return 1 if report.rejected or report.rejected_documents else 0


def import_failure(error: BaseException, data_dir: Path) -> str:
    """One line: why an import stopped, the disk it writes to, and what it left."""
    if isinstance(error, DBAPIError):  # the state database could not be written
        reason = f"{error.orig} (the state in {data_dir / 'state'})"
    elif isinstance(error, OSError):
        reason = f"{error.strerror or error}" + (f" ({error.filename})" if error.filename else "")
    else:
        reason = str(error)
    usage = shutil.disk_usage(data_dir if data_dir.exists() else Path.cwd())
    return (
        f"import failed: {reason}; the data dir {data_dir} is on a disk with "
        f"{usage.free / 2**20:.0f} MB free. Parts are published whole: what this import "
        "published is kept, the rest was not written; run the same import again to add "
        "what is missing (nothing is added twice)."
    )


def cmd_sql(args: argparse.Namespace) -> int:
    import duckdb

    from serp_etl.core.views import ViewsError
    from serp_etl.core.warehouse import QueryRefused
    from serp_etl.query import EmptyQuery, run

    missing = _no_warehouse(Path(args.data_dir))
    if missing:
        print(f"refused: {missing}", file=sys.stderr)
        return 2
    try:
        run(args.data_dir, args.query, args.format, sys.stdout)
    except (QueryRefused, EmptyQuery, ViewsError) as refusal:
        print(f"refused: {refusal}", file=sys.stderr)
        return 2
    except duckdb.Error as error:
        print(f"query failed: {str(error).splitlines()[0]}", file=sys.stderr)
        return 2
    return 0


def _no_warehouse(data_dir: Path) -> str | None:
    """Why ``data_dir`` holds no warehouse to query (None: it does). Nothing is created in a
    place that is not a data dir (a query run outside the project, a mistyped --data-dir)."""
    from serp_etl.storage.location import storage_url

    if storage_url() is not None:  # the warehouse is in the bucket; the views file goes here
        return (
            None
            if data_dir.is_dir()
            else (
                f"{data_dir} does not exist: create it (it keeps the views of the bucket's "
                "warehouse), or pass --data-dir"
            )
        )
    if (data_dir / "warehouse").is_dir():
        return None
    return (
        f"{data_dir.resolve()} holds no warehouse ({data_dir / 'warehouse'} does not exist): "
        "run from the project, or pass --data-dir (or set SERP_ETL_DATA_DIR) to a data dir "
        "a run has written"
    )


def cmd_sandbox_serve(args: argparse.Namespace) -> int:
    from serp_etl.sandbox.dataforseo.app import LOGIN, PASSWORD
    from serp_etl.sandbox.semscraper.app import API_KEY as SEMSCRAPER_API_KEY
    from serp_etl.sandbox.semscraper.app import HMAC_KEY as SEMSCRAPER_HMAC_KEY
    from serp_etl.sandbox.wsgi import make_loopback_server

    sandbox = _sandboxes(args.data_dir)[args.provider]
    try:
        server = make_loopback_server(sandbox.app, args.port)
    except OSError as error:
        print(
            f"cannot listen on 127.0.0.1:{args.port}: {error.strerror} (another sandbox? "
            "choose another --port)",
            file=sys.stderr,
        )
        return 2
    host, port = server.server_address[:2]
    assert isinstance(host, str)  # an AF_INET server's address
    auth = (
        f"Basic auth {LOGIN}/{PASSWORD}"
        if args.provider == "dataforseo"
        else f"Bearer {SEMSCRAPER_API_KEY}, callbacks signed with {SEMSCRAPER_HMAC_KEY}"
    )
    return serve_until_interrupted(
        server,
        f"{args.provider} sandbox on http://{host}:{port} ({auth}); state in "
        f"{sandbox.state_path}. Ctrl-C stops it.",
    )


def cmd_callbacks_serve(args: argparse.Namespace) -> int:
    import socket

    import uvicorn

    from serp_etl.providers.semscraper.callbacks import CallbackReceiver

    key = os.environ.get(HMAC_KEY_ENV)
    if not key:
        print(f"set {HMAC_KEY_ENV} to the HMAC key of your SemScraper API key", file=sys.stderr)
        return 2
    refusal = claim_run_mode(args.data_dir)
    if refusal:
        print(refusal, file=sys.stderr)
        return 2
    state = state_location(args.data_dir, "ledger")
    receiver = CallbackReceiver(key, state, bodies=inbox_bodies(args.data_dir, state))
    sock = socket.socket(socket.AF_INET6 if ":" in args.host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((args.host, args.port))
    except OSError as error:
        print(f"cannot listen on {args.host}:{args.port}: {error.strerror}", file=sys.stderr)
        return 2
    print(
        f"SemScraper callback receiver on http://{args.host}:{sock.getsockname()[1]}; "
        f"deliveries are verified with {HMAC_KEY_ENV} and kept in "
        f"{describe_location(state)}. Ctrl-C stops it.",
        flush=True,
    )
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    # One line per delivery comes from the receiver: uvicorn's own access log would repeat it.
    config = uvicorn.Config(
        receiver.app, access_log=False, log_level="warning", timeout_keep_alive=5
    )
    uvicorn.Server(config).run(sockets=[sock])
    return 0


def cmd_targets_check(args: argparse.Namespace) -> int:
    from serp_etl.core.targets import TargetConfigError
    from serp_etl.providers.dataforseo.targets import TARGETS_FILE
    from serp_etl.targets_check import check_targets

    path = Path(args.file or args.data_dir / TARGETS_FILE)
    try:
        lines = check_targets(path, args.data_dir)
    except TargetConfigError as error:
        print(error, file=sys.stderr)
        return 2
    print("\n".join(lines))
    return 0


def cmd_init(args: argparse.Namespace) -> int:
    from serp_etl.instance_home import InstanceHomeError, prepare_home
    from serp_etl.project_files import init_data_dir

    try:
        lines = init_data_dir(args.data_dir)
        # A DAGSTER_HOME elsewhere is the user's: upgraded if an earlier serp-etl made it.
        home = Path(os.environ.get("DAGSTER_HOME") or args.data_dir / "dagster")
        if home.resolve() != (args.data_dir / "dagster").resolve():
            lines += prepare_home(home, write_config=False)
    except InstanceHomeError as error:
        print(error, file=sys.stderr)
        return 2
    print("\n".join(lines))
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from serp_etl.instance_home import InstanceHomeError
    from serp_etl.project_files import init_data_dir

    # The code location reads its data dir and Dagster its instance from the environment:
    # set both before either is imported. The project's instance by default, so the run is
    # in the UI's history; a data dir without a targets file or that instance's config gets
    # the examples (serp-etl init).
    os.environ["SERP_ETL_DATA_DIR"] = str(args.data_dir.resolve())
    user_home = Path(os.environ["DAGSTER_HOME"]) if "DAGSTER_HOME" in os.environ else None
    os.environ.setdefault("DAGSTER_HOME", str((args.data_dir / "dagster").resolve()))
    try:
        lines = init_data_dir(args.data_dir, dagster_home=user_home)
    except InstanceHomeError as error:
        print(error, file=sys.stderr)
        return 2
    for line in lines:
        if not line.endswith("(it is yours)"):
            print(line)
    Path(os.environ["DAGSTER_HOME"]).mkdir(parents=True, exist_ok=True)  # the user's may not be
    import dagster as dg

    from serp_etl.runner import instances, run_day, start_problem

    day = args.date or datetime.now(UTC).date().isoformat()
    problem = start_problem(day)
    if problem:
        print(problem, file=sys.stderr)
        return 2
    known = instances()
    if args.provider and args.provider not in known:
        print(f"no provider instance {args.provider!r}: {', '.join(known)}", file=sys.stderr)
        return 2
    providers = [args.provider] if args.provider else known
    with dg.DagsterInstance.get() as instance:
        summaries = run_day(instance, day, providers)
    for summary in summaries:
        print("\n".join(summary.lines()))
    return 0 if all(summary.ok for summary in summaries) else 1


def _day_alerts(data_dir: Path, day: str) -> dict:
    """Provider -> the alerts table of ``day`` (as the warehouse holds it)."""
    from serp_etl import catalog
    from serp_etl.my_sites.alerts import ALERTS_SCHEMA

    with catalog.connect(data_dir) as connection:
        return {
            provider: connection.sql(
                "SELECT * EXCLUDE (date) FROM my_alerts WHERE provider = ? AND date = ? "
                "ORDER BY kind, alert_id",
                params=[provider, day],
            )
            .to_arrow_table()
            .select(ALERTS_SCHEMA.names)
            .cast(ALERTS_SCHEMA)
            for provider in catalog.instances(data_dir)
        }


def cmd_alerts_list(args: argparse.Namespace) -> int:
    from serp_etl.my_sites.delivery import open_outbox

    problem = _no_warehouse(args.data_dir)
    if problem:
        print(problem, file=sys.stderr)
        return 2
    day = args.date or datetime.now(UTC).date().isoformat()
    states: dict[str, list[str]] = {}
    location = state_location(args.data_dir, "alerts")
    if not isinstance(location, Path) or location.exists():  # none yet: nothing was sent
        with open_outbox(args.data_dir) as outbox:
            for record in outbox.records(day):
                states.setdefault(record.alert_id, []).append(
                    f"{record.channel} {record.state}"
                    + (f" ({record.last_error})" if record.last_error else "")
                )
    tables = _day_alerts(args.data_dir, day)
    total = sum(table.num_rows for table in tables.values())
    print(f"{day}: {count(total, 'alert')}")
    for table in tables.values():
        for alert in table.to_pylist():
            delivery = "; ".join(states.get(alert["alert_id"], ["not sent"]))
            print(f"- [{alert['kind']}] {alert['message']}\n  {delivery}")
    return 0


def cmd_alerts_send(args: argparse.Namespace) -> int:
    from serp_etl.my_sites.alerts import AlertSettingsError
    from serp_etl.my_sites.notify import AlertSettings, day_rows, notify_day, preview

    problem = _no_warehouse(args.data_dir)
    if problem:
        print(problem, file=sys.stderr)
        return 2
    try:
        settings = AlertSettings.from_env()
    except AlertSettingsError as error:
        print(error, file=sys.stderr)
        return 2
    day = args.date or datetime.now(UTC).date().isoformat()
    tables = _day_alerts(args.data_dir, day)
    if args.dry_run:
        rows = [
            row
            for provider, table in tables.items()
            for row in day_rows(provider, day, table, settings.digest)
        ]
        print("\n\n".join(preview(rows, settings)) or f"nothing to send for {day}")
        return 0
    if not settings.channels:
        print(
            "no channel configured: set SERP_ETL_ALERT_WEBHOOK_URL or "
            "SERP_ETL_ALERT_SMTP_HOST (README: My sites and alerts)",
            file=sys.stderr,
        )
        return 2
    failed = False
    for provider, table in tables.items():
        # Sent by hand: whatever the day's age.
        notified = notify_day(
            str(args.data_dir), provider, day, table, settings, datetime.fromisoformat(day).date()
        )
        for line in notified.delivery.lines if notified.delivery else []:
            print(line)
        failed |= bool(notified.delivery and notified.delivery.failed)
    return 1 if failed else 0


def cmd_sandbox_stats(args: argparse.Namespace) -> int:
    import orjson

    stats = {name: sandbox.stats() for name, sandbox in _sandboxes(args.data_dir).items()}
    if args.format == "json":
        print(orjson.dumps(stats).decode())
    else:
        for name, values in stats.items():
            print(name)
            for key, value in values.items():
                print(f"  {key}: {value}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="serp-etl", description=__doc__)
    parser.add_argument(
        "--version", action="version", version=f"serp-etl {importlib.metadata.version('serp-etl')}"
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="data directory (default: $SERP_ETL_DATA_DIR, else ./data)",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    importer = commands.add_parser("import", help="load saved API responses into a date")
    importer.add_argument(
        "provider",
        type=_instance,
        metavar="INSTANCE",
        help="the provider instance the responses are filed under: dataforseo, semscraper, or "
        "another's name (dataforseo_client_b)",
    )
    importer.add_argument(
        "files",
        nargs="+",
        help="JSON, newline-delimited JSON, or .gz: "
        "DataForSEO task_get responses, SemScraper retrieve-by-ids responses",
    )
    importer.add_argument("--date", required=True, type=_date, help="partition YYYY-MM-DD")
    importer.add_argument(
        "--keep-good",
        action="store_true",
        help="land a file's good documents and write the rejected ones, with "
        "line and reason, to <data dir>/rejects/ (default: a file with "
        "an invalid document lands nothing)",
    )
    importer.add_argument(
        "--max-document-mb",
        type=int,
        default=DEFAULT_MAX_DOCUMENT_MB,
        help="refuse documents larger than this (default %(default)s)",
    )
    importer.set_defaults(handler=cmd_import)

    sql = commands.add_parser("sql", help="query every table with DuckDB SQL")
    sql.add_argument("query")
    sql.add_argument(
        "--format",
        choices=["table", "csv", "json"],
        default="table",
        help="table: DuckDB's rendering; csv: lists as JSON, NULL empty; json: "
        "an array of objects, JSON columns as JSON",
    )
    sql.set_defaults(handler=cmd_sql)

    targets = commands.add_parser("targets", help="the targets file")
    targets_commands = targets.add_subparsers(dest="targets_command", required=True)
    check = targets_commands.add_parser(
        "check",
        help="check the targets file (both providers, against their locations and "
        "languages) without a run",
    )
    check.add_argument("file", nargs="?", help="default: <data dir>/targets.toml")
    check.set_defaults(handler=cmd_targets_check)

    init = commands.add_parser(
        "init",
        help="write the example targets file and make the Dagster home (<data dir>/dagster) "
        "where they are missing; upgrade a home an earlier serp-etl made (that one, or "
        "$DAGSTER_HOME's)",
    )
    init.set_defaults(handler=cmd_init)

    run = commands.add_parser(
        "run", help="run the day's jobs (Dagster's, in its instance) and summarize them"
    )
    run.add_argument("--date", type=_date, help="partition YYYY-MM-DD (default: today, UTC)")
    run.add_argument(
        "--provider",
        metavar="INSTANCE",
        help="one provider instance's daily job (dataforseo, semscraper, or another the defs "
        "folder declares; default: every one, one after the other)",
    )
    run.set_defaults(handler=cmd_run)

    alerts = commands.add_parser("alerts", help="my sites' alerts and their delivery")
    alerts_commands = alerts.add_subparsers(dest="alerts_command", required=True)
    listing = alerts_commands.add_parser("list", help="a day's alerts and where each was sent")
    send = alerts_commands.add_parser(
        "send", help="send a day's alerts not sent yet (each alert at most once per channel)"
    )
    send.add_argument(
        "--dry-run",
        action="store_true",
        help="print what would be sent to each channel; send and record nothing",
    )
    for command, handler in ((listing, cmd_alerts_list), (send, cmd_alerts_send)):
        command.add_argument("--date", type=_date, help="YYYY-MM-DD (default: today, UTC)")
        command.set_defaults(handler=handler)

    callbacks = commands.add_parser("callbacks", help="receive SemScraper callback deliveries")
    callbacks_commands = callbacks.add_subparsers(dest="callbacks_command", required=True)
    receive = callbacks_commands.add_parser("serve", help="serve the callback receiver")
    receive.add_argument("--port", type=int, default=8766)
    receive.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default loopback; 0.0.0.0 behind a proxy)",
    )
    receive.set_defaults(handler=cmd_callbacks_serve)

    sandbox = commands.add_parser("sandbox", help="the built-in provider sandboxes")
    sandbox_commands = sandbox.add_subparsers(dest="sandbox_command", required=True)
    serve = sandbox_commands.add_parser("serve", help="serve a sandbox on loopback")
    serve.add_argument("--port", type=int, default=8765)
    serve.add_argument("--provider", choices=["dataforseo", "semscraper"], default="dataforseo")
    serve.set_defaults(handler=cmd_sandbox_serve)
    stats = sandbox_commands.add_parser("stats", help="what the sandboxes billed and served")
    stats.add_argument("--format", choices=["table", "json"], default="table")
    stats.set_defaults(handler=cmd_sandbox_stats)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.data_dir = Path(args.data_dir or default_data_dir())
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
