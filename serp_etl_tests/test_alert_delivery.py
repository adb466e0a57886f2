"""Alerts delivered to real receivers on loopback: an HTTP server that records what it is sent
(JSON, Slack's text) and an SMTP server over STARTTLS with a login; each alert once, retried
with backoff while the receiver fails, never twice on a rerun, no secret in logs or metadata."""

from __future__ import annotations

import re
import shutil
import socket
import ssl
from dataclasses import dataclass, field
from datetime import date
from email import message_from_bytes, policy
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from serp_etl import catalog
from serp_etl.cli import main
from serp_etl.defs.alerts import alert_deliveries, alerts_asset
from serp_etl.defs.resources import WarehouseResource
from serp_etl.defs.semscraper_assets import SEMSCRAPER
from serp_etl.my_sites import delivery
from serp_etl.my_sites.alerts import ALERTS_SCHEMA, Thresholds, day_alerts
from serp_etl.my_sites.channels import Email, Webhook
from serp_etl.my_sites.delivery import Outbox, deliver, open_outbox
from serp_etl.my_sites.notify import AlertSettings, notify_day
from serp_etl_tests import sandbox_days
from serp_etl_tests.conftest import serving_asgi
from serp_etl_tests.test_my_sites_views import DAYS

DAY = DAYS[1]  # papier peint tropical rose 8 places: one semscraper alert
TOKEN = "T0KEN-b1c2d3-SECRET"
PASSWORD = "s3cret-smtp-pass"


@dataclass
class Receiver:
    """A webhook that records every request, and answers ``failures`` of them with 503."""

    failures: int = 0
    status: int = 503
    requests: list[dict] = field(default_factory=list)
    delivered: list[dict] = field(default_factory=list)

    def app(self) -> Starlette:
        async def hook(request: Request) -> JSONResponse:
            body = await request.json()
            self.requests.append(
                {
                    "path": request.url.path,
                    "body": body,
                    "key": request.headers.get("idempotency-key"),
                }
            )
            if self.failures:
                self.failures -= 1
                return JSONResponse({"error": "busy"}, status_code=self.status)
            self.delivered.append(body)
            return JSONResponse({"ok": True})

        return Starlette(routes=[Route("/hooks/{token}", hook, methods=["POST"])])


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    return sandbox_days.build(tmp_path_factory.mktemp("alerts") / "data", days=DAYS).data_dir


@pytest.fixture
def data_dir(built: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "data"
    shutil.copytree(built, copy)
    catalog.refresh_views(copy)  # its views name the copy's files
    return copy


@pytest.fixture
def receiver():
    receiver = Receiver()
    with serving_asgi(receiver.app()) as url:
        receiver.url = f"{url}/hooks/{TOKEN}"
        yield receiver


def alerts_of(data_dir: Path, provider: str = "semscraper", day: str = DAY) -> pa.Table:
    with catalog.connect(data_dir) as connection:
        return day_alerts(connection, provider, day, Thresholds())


class Sleeps(list):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def test_a_failing_receiver_is_retried_with_backoff_and_gets_each_alert_once(data_dir, receiver):
    table = alerts_of(data_dir, "dataforseo")
    assert table.num_rows == 3  # three new sites showed my images that day
    receiver.failures = 2
    settings = AlertSettings(channels=(Webhook(receiver.url),))
    sleeps = Sleeps()
    notified = notify_day(
        str(data_dir), "dataforseo", DAY, table, settings, date.fromisoformat(DAY), sleep=sleeps
    )
    assert notified.recorded == 3 and notified.delivery.delivered == 3
    assert sleeps == [1.0, 4.0]  # the first alert: two refusals, then through
    assert len(receiver.requests) == 5 and len(receiver.delivered) == 3
    sent = [body["alerts"][0]["alert_id"] for body in receiver.delivered]
    assert sorted(sent) == sorted(table.column("alert_id").to_pylist())
    first = receiver.delivered[0]
    assert first["source"] == "serp-etl" and first["day"] == DAY
    assert first["alerts"][0]["kind"] == "new_image_host" and first["text"].startswith(
        f"serp-etl, {DAY}:\n- "
    )
    # The day again (a rerun, late results): the same alerts are not sent again.
    again = notify_day(
        str(data_dir),
        "dataforseo",
        DAY,
        alerts_of(data_dir, "dataforseo"),
        settings,
        date.fromisoformat(DAY),
        sleep=sleeps,
    )
    assert again.recorded == 0 and again.delivery.delivered == 0
    assert len(receiver.requests) == 5
    with open_outbox(data_dir) as outbox:
        assert {(r.state, r.attempts) for r in outbox.records(DAY)} == {("delivered", 1)}


def test_a_receiver_down_for_longer_gets_it_later_from_the_sensor(data_dir, receiver, monkeypatch):
    receiver.failures = 3
    webhook = Webhook(receiver.url)
    with Outbox(data_dir / "state" / "alerts.sqlite") as outbox:
        alert = {**alerts_of(data_dir).to_pylist()[0], "date": DAY}
        assert outbox.enqueue([alert], ["webhook"], now=1000.0) == 1
        report = deliver(outbox, [webhook], clock=lambda: 1000.0, sleep=Sleeps())
        assert (report.delivered, report.retrying) == (0, 1)
        assert report.lines == [
            f"1 alert(s) of {DAY} to webhook (json) at http://127.0.0.1 "
            "not delivered (HTTP 503): tried again in 300 s"
        ]
        (record,) = outbox.records()
        assert (record.state, record.last_error) == ("pending", "HTTP 503")
        # Not before its wait is over.
        assert deliver(outbox, [webhook], clock=lambda: 1200.0).delivered == 0
    assert len(receiver.requests) == 3
    monkeypatch.setenv("SERP_ETL_ALERT_WEBHOOK_URL", receiver.url)
    context = dg.build_sensor_context(
        resources={"warehouse": WarehouseResource(data_dir=str(data_dir))}
    )
    tick = alert_deliveries.evaluate_tick(context)  # the wait (from 1970) is over
    assert tick.skip_message.startswith("delivered 1 alert(s)")
    assert len(receiver.delivered) == 1 and TOKEN not in tick.skip_message
    assert alert_deliveries.evaluate_tick(context).skip_message == "nothing due"


def test_a_receiver_that_is_down_is_tried_once_per_round_not_once_per_alert(data_dir, receiver):
    receiver.failures = 10**6
    sleeps = Sleeps()
    with Outbox(None) as outbox:
        outbox.enqueue(
            [{**row, "date": DAY} for row in alerts_of(data_dir, "dataforseo").to_pylist()],
            ["webhook"],
            0,
        )
        report = deliver(outbox, [Webhook(receiver.url)], clock=lambda: 1.0, sleep=sleeps)
        assert report.retrying == 3 and {r.state for r in outbox.records()} == {"pending"}
        assert {r.last_error for r in outbox.records()} == {"HTTP 503"}
    # One message's three tries and two waits, not three messages' nine and six.
    assert len(receiver.requests) == 3 and sleeps == [1.0, 4.0]


def test_a_receiver_that_refuses_is_not_asked_again(data_dir, receiver):
    receiver.failures, receiver.status = 10, 404
    with Outbox(None) as outbox:
        outbox.enqueue([{**alerts_of(data_dir).to_pylist()[0], "date": DAY}], ["webhook"], 0)
        report = deliver(outbox, [Webhook(receiver.url)], clock=lambda: 1.0, sleep=Sleeps())
        assert report.failed == 1 and outbox.records()[0].state == "failed"
        assert deliver(outbox, [Webhook(receiver.url)], clock=lambda: 1e9).failed == 0
    assert len(receiver.requests) == 1


def test_the_outbox_keeps_its_records_on_either_state_database(state_location):
    alert = {"alert_id": "a1", "date": DAY, "kind": "rank_rise", "message": "up"}
    with Outbox(state_location) as outbox:
        assert outbox.enqueue([alert], ["webhook", "email"], now=5.0) == 2
        assert outbox.enqueue([alert], ["webhook"], now=5.0) == 0
        (taken,) = outbox.claim("webhook", now=5.0)
        assert (taken.alert, taken.attempts, taken.state) == (alert, 1, "sending")
        outbox.settle([taken], "delivered")
        outbox.settle(outbox.claim("email", now=5.0), "pending", "HTTP 503", 99.0)
        assert outbox.claim("email", now=98.0) == []
        assert [(r.channel, r.state, r.last_error) for r in outbox.records(DAY)] == [
            ("email", "pending", "HTTP 503"),
            ("webhook", "delivered", None),
        ]


def test_a_receiver_failing_for_hours_is_given_up_after_the_last_round(data_dir, receiver):
    receiver.failures = 10**6
    webhook = Webhook(receiver.url)
    with Outbox(None) as outbox:
        outbox.enqueue([{**alerts_of(data_dir).to_pylist()[0], "date": DAY}], ["webhook"], 0)
        waits = []
        for round_ in range(1, delivery.MAX_ATTEMPTS + 1):
            now = 1e9 * round_  # later than any wait
            report = deliver(outbox, [webhook], clock=lambda now=now: now, sleep=Sleeps())
            waits += [line.rsplit(" in ", 1)[-1] for line in report.lines if "again" in line]
        assert waits == ["300 s", "600 s", "1200 s", "2400 s"] + ["3600 s"] * 4
        assert report.failed == 1 and report.lines[0].startswith("gave up on 1 alert(s)")
        assert outbox.records()[0].state == "failed"
    assert len(receiver.requests) == 3 * delivery.MAX_ATTEMPTS


def test_a_send_that_got_no_answer_is_never_sent_again(data_dir):
    """The receiver reads the request and hangs up without an answer: it may have acted on
    it, so the alert is not sent again (at most once)."""
    import threading

    server = socket.create_server(("127.0.0.1", 0))
    seen = []

    def hang_up() -> None:
        while True:
            try:
                connection, _ = server.accept()
            except OSError:
                return
            with connection:
                seen.append(connection.recv(65536))

    threading.Thread(target=hang_up, daemon=True).start()
    webhook = Webhook(f"http://127.0.0.1:{server.getsockname()[1]}/hooks/{TOKEN}")
    try:
        with Outbox(None) as outbox:
            outbox.enqueue([{**alerts_of(data_dir).to_pylist()[0], "date": DAY}], ["webhook"], 0)
            report = deliver(outbox, [webhook], clock=lambda: 1.0, sleep=Sleeps())
            assert report.unsure == 1 and outbox.records()[0].state == "unsure"
            assert deliver(outbox, [webhook], clock=lambda: 1e12).lines == []
    finally:
        server.close()
    assert len(seen) == 1 and seen[0].startswith(b"POST /hooks/")
    assert TOKEN not in " ".join(report.lines)


def test_two_senders_never_send_one_alert_twice(data_dir):
    with (
        Outbox(data_dir / "state" / "alerts.sqlite") as one,
        Outbox(data_dir / "state" / "alerts.sqlite") as other,
    ):
        one.enqueue(
            [{**row, "date": DAY} for row in alerts_of(data_dir, "dataforseo").to_pylist()],
            ["webhook"],
            0,
        )
        taken = one.claim("webhook", now=1.0)
        assert len(taken) == 3 and other.claim("webhook", now=1.0) == []
        # A sender that died after its claim leaves them "sending": never sent again.
        assert other.claim("webhook", now=1e12) == []


def test_slack_gets_its_text(data_dir, receiver):
    settings = AlertSettings(channels=(Webhook(receiver.url, "slack"),))
    notify_day(
        str(data_dir), "semscraper", DAY, alerts_of(data_dir), settings, date.fromisoformat(DAY)
    )
    assert receiver.delivered == [
        {
            "text": (
                f"serp-etl, {DAY}:\n- papierpeinttropical.fr for 'papier peint tropical' (fr, fr, "
                "desktop) rose 8 places: #10 -> #2\n  https://www.papierpeinttropical.fr/ideas/"
                "papier-peint-tropical-5978"
            )
        }
    ]


def test_a_digest_is_one_message_a_day_and_says_so_on_a_quiet_day(data_dir, receiver):
    settings = AlertSettings(channels=(Webhook(receiver.url),), digest=True, max_age_days=10)
    today = date.fromisoformat(DAYS[-1])
    for day in DAYS[1:]:
        notify_day(
            str(data_dir),
            "dataforseo",
            day,
            alerts_of(data_dir, "dataforseo", day),
            settings,
            today,
        )
    quiet = alerts_of(data_dir, "dataforseo", DAYS[0])
    assert quiet.num_rows == 0  # the first day: nothing to compare with
    notify_day(str(data_dir), "dataforseo", DAYS[0], quiet, settings, today)
    notify_day(str(data_dir), "dataforseo", DAYS[0], quiet, settings, today)  # a rerun
    assert [(body["day"], len(body["alerts"])) for body in receiver.delivered] == [
        (DAYS[1], 3),
        (DAYS[2], 1),
        (DAYS[3], 4),
        (DAYS[0], 1),
    ]
    assert receiver.delivered[-1]["text"] == (
        f"serp-etl, {DAYS[0]}:\n- No change for your sites and images on {DAYS[0]} (dataforseo)."
    )
    assert receiver.delivered[2]["subject"] == (
        f"serp-etl {DAYS[3]}: 4 changes for your sites and images"
    )


@dataclass
class Mailbox:
    failures: int = 0
    messages: list[bytes] = field(default_factory=list)

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's name)
        if self.failures:
            self.failures -= 1
            return "451 4.3.0 Try again later"
        self.messages.append(envelope.content)
        return "250 OK"


@pytest.fixture(params=["starttls"])
def smtp_server(request, tmp_path: Path, monkeypatch):
    """An SMTP server on loopback that requires STARTTLS (or speaks TLS from the start: the
    ``tls`` param) with a test CA's certificate, trusted by this process only, and a
    login."""
    import trustme
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult

    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "ca.pem"))

    def login(server, session, envelope, mechanism, auth_data):
        # handled=False: aiosmtpd answers a failed login itself (535).
        return AuthResult(
            success=(auth_data.login, auth_data.password) == (b"alerts", PASSWORD.encode()),
            handled=False,
        )

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    mailbox = Mailbox()
    # aiosmtpd tells TLS from the start from no TLS at all only through STARTTLS: with
    # implicit TLS, its login must be allowed without it.
    security = (
        {"ssl_context": context, "auth_require_tls": False}
        if request.param == "tls"
        else {"tls_context": context, "require_starttls": True}
    )
    controller = Controller(
        mailbox,
        hostname="127.0.0.1",
        port=port,
        authenticator=login,
        auth_required=True,
        **security,
    )
    controller.start()
    try:
        yield mailbox, port, request.param
    finally:
        controller.stop()


@pytest.mark.parametrize("smtp_server", ["starttls", "tls"], indirect=True)
# The implicit-TLS server allows a login "without TLS" as aiosmtpd sees it (see smtp_server).
@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_email_goes_over_tls_with_a_login_and_is_retried(data_dir, smtp_server):
    mailbox, port, security = smtp_server
    mailbox.failures = 1
    email = Email(
        "127.0.0.1",
        port,
        security,
        "serp-etl@example.org",
        ("seo@example.org",),
        "alerts",
        PASSWORD,
    )
    sleeps = Sleeps()
    notified = notify_day(
        str(data_dir),
        "semscraper",
        DAY,
        alerts_of(data_dir),
        AlertSettings(channels=(email,)),
        date.fromisoformat(DAY),
        sleep=sleeps,
    )
    assert notified.delivery.delivered == 1 and sleeps == [1.0]
    (raw,) = mailbox.messages
    message = message_from_bytes(raw, policy=policy.default)
    assert message["Subject"] == (
        f"serp-etl {DAY}: papierpeinttropical.fr for 'papier peint tropical' (fr, fr, "
        "desktop) rose 8 places: #10 -> #2"
    )
    assert message["To"] == "seo@example.org" and "@serp-etl>" in message["Message-ID"]
    assert "#10 -> #2" in message.get_content()
    # A wrong password is a refusal, said without the password.
    wrong = Email(
        "127.0.0.1",
        port,
        security,
        "a@example.org",
        ("b@example.org",),
        "alerts",
        "not-" + PASSWORD,
    )
    with Outbox(None) as outbox:
        outbox.enqueue([{**alerts_of(data_dir).to_pylist()[0], "date": DAY}], ["email"], 0)
        report = deliver(outbox, [wrong], clock=lambda: 1.0, sleep=Sleeps())
        assert report.failed == 1 and "535" in outbox.records()[0].last_error
        assert PASSWORD not in " ".join(report.lines) + outbox.records()[0].last_error


def test_a_run_delivers_once_shows_the_alerts_and_never_a_secret(
    data_dir, receiver, smtp_server, monkeypatch, caplog
):
    monkeypatch.setenv("SERP_ETL_ALERT_WEBHOOK_URL", receiver.url)
    wrong = "Wr0ng-Pa55-for-the-log"  # the mail server refuses it: said without it
    for name, value in {
        "HOST": "127.0.0.1",
        "PORT": str(smtp_server[1]),
        "USER": "alerts",
        "PASSWORD": wrong,
    }.items():
        monkeypatch.setenv(f"SERP_ETL_ALERT_SMTP_{name}", value)
    monkeypatch.setenv("SERP_ETL_ALERT_EMAIL_FROM", "serp-etl@example.org")
    monkeypatch.setenv("SERP_ETL_ALERT_EMAIL_TO", "seo@example.org")
    monkeypatch.setenv("SERP_ETL_ALERT_MAX_AGE_DAYS", "100000")  # the days are in the past
    monkeypatch.setattr(delivery, "IMMEDIATE_DELAYS", (0.0, 0.0))
    monkeypatch.setattr(delivery, "LATER_DELAY_SECONDS", 0)  # the next run may try again
    receiver.failures = 3  # the first run finds the receiver down

    instance = dg.DagsterInstance.ephemeral()

    def run() -> dg.ExecuteInProcessResult:
        return dg.materialize(
            [alerts_asset(SEMSCRAPER)],
            partition_key=DAY,
            instance=instance,
            resources={"warehouse": WarehouseResource(data_dir=str(data_dir))},
        )

    first = run()
    assert first.success and receiver.delivered == []
    (check,) = first.get_asset_check_evaluations()
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
    assert "rose 8 places: #10 -> #2" in check.description
    (event,) = first.asset_materializations_for_node("semscraper__alerts")
    assert event.metadata["dagster/partition_row_count"].value == 1
    assert event.metadata["alerts_retrying"].value == 1
    second, third = run(), run()
    assert len(receiver.delivered) == 1 and len(receiver.requests) == 4
    assert (
        third.asset_materializations_for_node("semscraper__alerts")[0]
        .metadata["alerts_delivered"]
        .value
        == 0
    )
    logged = "\n".join(
        repr(entry) for r in (first, second, third) for entry in instance.all_logs(r.run_id)
    )
    assert "HTTP 503" in logged and "refused: SMTP 535" in logged
    assert TOKEN not in logged + caplog.text and wrong not in logged + caplog.text
    assert event.metadata["alerts_failed"].value == 1  # the e-mail, refused for good
    with catalog.connect(data_dir) as connection:
        assert connection.execute(
            "SELECT kind, before, after FROM my_alerts WHERE date = ?", [DAY]
        ).fetchall() == [("rank_rise", 10, 2)]


def test_a_dry_run_sends_and_records_nothing(data_dir, receiver, monkeypatch, capsys):
    monkeypatch.setenv("SERP_ETL_ALERT_WEBHOOK_URL", receiver.url)
    monkeypatch.setenv("SERP_ETL_ALERT_WEBHOOK_FORMAT", "slack")
    monkeypatch.setenv("SERP_ETL_ALERT_DRY_RUN", "1")
    monkeypatch.setenv("SERP_ETL_ALERT_MAX_AGE_DAYS", "100000")
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize(
        [alerts_asset(SEMSCRAPER)],
        partition_key=DAY,
        instance=instance,
        resources={"warehouse": WarehouseResource(data_dir=str(data_dir))},
    )
    assert result.success and receiver.requests == []
    assert not (data_dir / "state" / "alerts.sqlite").exists()
    (logged,) = [
        entry.user_message
        for entry in instance.all_logs(result.run_id)
        if "dry run" in entry.user_message
    ]
    assert "would send to webhook (slack) at http://127.0.0.1:" in logged
    assert "rose 8 places" in logged and TOKEN not in logged
    # The CLI's dry run prints the same, for the day's table as materialized.
    assert main(["--data-dir", str(data_dir), "alerts", "send", "--dry-run", "--date", DAY]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith('to webhook (slack) at http://127.0.0.1:\n{\n  "text": ')
    assert TOKEN not in printed and receiver.requests == []


def test_a_backfill_of_old_days_sends_nothing(data_dir, receiver):
    settings = AlertSettings(channels=(Webhook(receiver.url),))
    notified = notify_day(
        str(data_dir),
        "dataforseo",
        DAY,
        alerts_of(data_dir, "dataforseo"),
        settings,
        today=date(2026, 12, 4),
    )
    assert notified.metadata() == {
        "alerts_not_sent_because": (
            f"{DAY} is more than 2 days old: its alerts are kept in the table, not sent "
            "(SERP_ETL_ALERT_MAX_AGE_DAYS)"
        )
    }
    assert receiver.requests == []


def test_the_cli_lists_a_days_alerts_with_where_each_went(data_dir, receiver, monkeypatch, capsys):
    table = alerts_of(data_dir)
    store = catalog.Warehouse(data_dir)
    from serp_etl.core.parquet import publish_table

    publish_table(store.partition_file("semscraper", "alerts", DAY), table.cast(ALERTS_SCHEMA))
    monkeypatch.setenv("SERP_ETL_ALERT_WEBHOOK_URL", receiver.url)
    assert main(["--data-dir", str(data_dir), "alerts", "send", "--date", DAY]) == 0
    assert main(["--data-dir", str(data_dir), "alerts", "list", "--date", DAY]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[-3:] == [
        f"{DAY}: 1 alert",
        "- [rank_rise] papierpeinttropical.fr for 'papier peint tropical' (fr, fr, desktop) "
        "rose 8 places: #10 -> #2",
        "  webhook delivered",
    ]


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"SERP_ETL_ALERT_WEBHOOK_URL": f"ftp://x/{TOKEN}"}, "must be an http(s) URL"),
        (
            {"SERP_ETL_ALERT_WEBHOOK_URL": "https://x/h", "SERP_ETL_ALERT_WEBHOOK_FORMAT": "teams"},
            "must be one of json, slack",
        ),
        (
            {"SERP_ETL_ALERT_SMTP_HOST": "mail", "SERP_ETL_ALERT_SMTP_SECURITY": "none"},
            "must be starttls or tls",
        ),
        ({"SERP_ETL_ALERT_SMTP_HOST": "mail"}, "need SERP_ETL_ALERT_EMAIL_FROM"),
        ({"SERP_ETL_ALERT_DIGEST": "maybe"}, "SERP_ETL_ALERT_DIGEST must be 1 or 0"),
    ],
)
def test_bad_settings_are_named_without_their_secrets(environ, message):
    with pytest.raises(ValueError, match=re.escape(message)) as raised:
        AlertSettings.from_env(environ)
    assert TOKEN not in str(raised.value)


def test_slack_urls_default_to_slacks_format():
    (channel,) = AlertSettings.from_env(
        {"SERP_ETL_ALERT_WEBHOOK_URL": f"https://hooks.slack.com/services/{TOKEN}"}
    ).channels
    assert channel.format == "slack" and TOKEN not in channel.describe() + repr(channel)
