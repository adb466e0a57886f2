"""Where alerts go: a webhook (JSON, or the text of a Slack incoming webhook) and e-mail (SMTP
over TLS), each configured by environment variables. Their secrets (the webhook's URL, which
holds a token; the SMTP password) are never written to a log, an error or run metadata:
channels describe themselves by host alone, and every error text is redacted.

A channel's ``send`` either returns (delivered), or raises ``Retryable`` (nothing was
delivered: the receiver could not be reached or asked to come back), ``Refused`` (the
receiver said no for good: a wrong URL, a refused address) or ``Unsure`` (the request left
and no answer came: it may have been delivered, so it is not sent again).
"""

from __future__ import annotations

import hashlib
import json
import os
import smtplib
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import make_msgid
from urllib.parse import urlsplit

import httpx

from serp_etl.my_sites.alerts import AlertSettingsError

WEBHOOK_URL_ENV = "SERP_ETL_ALERT_WEBHOOK_URL"
WEBHOOK_FORMAT_ENV = "SERP_ETL_ALERT_WEBHOOK_FORMAT"
SMTP_ENV = {
    name: f"SERP_ETL_ALERT_SMTP_{name.upper()}"
    for name in ("host", "port", "security", "user", "password")
}
EMAIL_FROM_ENV = "SERP_ETL_ALERT_EMAIL_FROM"
EMAIL_TO_ENV = "SERP_ETL_ALERT_EMAIL_TO"
FORMATS = ("json", "slack")
SECURITY_PORTS = {"starttls": 587, "tls": 465}
TIMEOUT_SECONDS = 20


class Retryable(Exception):
    """Nothing was delivered; trying again later may work."""


class Refused(Exception):
    """The receiver refused the message for good."""


class Unsure(Exception):
    """The message left, and no answer came: it may have been delivered."""


@dataclass(frozen=True)
class Message:
    """One delivery: a day's alerts (one, or a digest of several) in words and as rows."""

    day: str
    subject: str
    text: str
    alerts: list[dict]

    def key(self) -> str:
        """The same alerts, the same key: what a receiver can deduplicate on."""
        ids = sorted(alert["alert_id"] for alert in self.alerts)
        return hashlib.sha256("\n".join(ids).encode()).hexdigest()[:32]


def redact(text: str, secrets: list[str]) -> str:
    for secret in sorted(filter(None, secrets), key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


@dataclass(frozen=True)
class Webhook:
    url: str = field(repr=False)
    format: str = "json"
    name: str = "webhook"

    def describe(self) -> str:
        parts = urlsplit(self.url)
        return f"webhook ({self.format}) at {parts.scheme}://{parts.hostname}"

    def secrets(self) -> list[str]:
        parts = urlsplit(self.url)
        return [self.url, parts.path, parts.query, parts.password or ""]

    def payload(self, message: Message) -> dict:
        if self.format == "slack":
            return {"text": message.text}
        return {
            "source": "serp-etl",
            "day": message.day,
            "subject": message.subject,
            "text": message.text,
            "alerts": message.alerts,
        }

    def preview(self, message: Message) -> str:
        return json.dumps(self.payload(message), indent=2, default=str, ensure_ascii=False)

    def send(self, message: Message) -> None:
        try:
            with httpx.Client(timeout=TIMEOUT_SECONDS) as client:
                response = client.post(
                    self.url,
                    content=self.preview(message).encode(),
                    headers={"Idempotency-Key": message.key(), "Content-Type": "application/json"},
                )
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as error:
            raise Retryable(f"{type(error).__name__}: {error}") from None
        except httpx.TransportError as error:
            raise Unsure(f"{type(error).__name__}: {error}") from None
        if response.status_code == 429 or response.status_code >= 500:
            raise Retryable(f"HTTP {response.status_code}")
        if response.status_code >= 300:
            raise Refused(f"HTTP {response.status_code}: {response.text[:200]}")


@dataclass(frozen=True)
class Email:
    host: str
    port: int
    security: str
    sender: str
    recipients: tuple[str, ...]
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    name: str = "email"

    def describe(self) -> str:
        return (
            f"e-mail via {self.host}:{self.port} ({self.security}) to {', '.join(self.recipients)}"
        )

    def secrets(self) -> list[str]:
        return [self.password or ""]

    def email(self, message: Message) -> EmailMessage:
        email = EmailMessage()
        email["Subject"], email["From"] = message.subject, self.sender
        email["To"] = ", ".join(self.recipients)
        # The same alerts, the same Message-ID: mail clients show a resent copy once.
        email["Message-ID"] = make_msgid(idstring=message.key(), domain="serp-etl")
        email.set_content(message.text)
        return email

    def preview(self, message: Message) -> str:
        return self.email(message).as_string()

    def send(self, message: Message) -> None:
        email = self.email(message)
        context = ssl.create_default_context()
        try:
            server: smtplib.SMTP
            if self.security == "tls":
                server = smtplib.SMTP_SSL(
                    self.host, self.port, timeout=TIMEOUT_SECONDS, context=context
                )
            else:
                server = smtplib.SMTP(self.host, self.port, timeout=TIMEOUT_SECONDS)
            with server:
                if self.security == "starttls":
                    server.starttls(context=context)
                if self.user:
                    server.login(self.user, self.password or "")
                server.send_message(email)
        except smtplib.SMTPRecipientsRefused as error:
            raise Refused(f"recipients refused: {', '.join(error.recipients)}") from None
        except smtplib.SMTPNotSupportedError as error:  # no STARTTLS, no login: the server's
            raise Refused(f"{type(error).__name__}: {error}") from None
        except smtplib.SMTPResponseException as error:
            text = f"SMTP {error.smtp_code}: {error.smtp_error!r}"
            raise (Refused if error.smtp_code >= 500 else Retryable)(text) from None
        except OSError as error:  # smtplib's errors, TLS's and timeouts are all OSErrors
            # Until the server's last reply, nothing is delivered: a dropped connection or a
            # refused one is tried again.
            raise Retryable(f"{type(error).__name__}: {error}") from None


Channel = Webhook | Email


def _webhook(environ: Mapping[str, str]) -> Webhook | None:
    url = environ.get(WEBHOOK_URL_ENV, "").strip()
    if not url:
        return None
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise AlertSettingsError(
            f"{WEBHOOK_URL_ENV} must be an http(s) URL (its value is "
            "not shown: it may hold a token)"
        )
    default = "slack" if parts.hostname == "hooks.slack.com" else "json"
    kind = environ.get(WEBHOOK_FORMAT_ENV, "").strip() or default
    if kind not in FORMATS:
        raise AlertSettingsError(
            f"{WEBHOOK_FORMAT_ENV} must be one of {', '.join(FORMATS)}, got {kind!r}"
        )
    return Webhook(url, kind)


def _email(environ: Mapping[str, str]) -> Email | None:
    host = environ.get(SMTP_ENV["host"], "").strip()
    if not host:
        return None
    security = environ.get(SMTP_ENV["security"], "").strip() or "starttls"
    if security not in SECURITY_PORTS:
        raise AlertSettingsError(
            f"{SMTP_ENV['security']} must be starttls or tls (mail is "
            f"only sent encrypted), got {security!r}"
        )
    port = environ.get(SMTP_ENV["port"], "").strip() or str(SECURITY_PORTS[security])
    if not port.isdigit():
        raise AlertSettingsError(f"{SMTP_ENV['port']} must be a port number, got {port!r}")
    sender = environ.get(EMAIL_FROM_ENV, "").strip()
    recipients = tuple(a.strip() for a in environ.get(EMAIL_TO_ENV, "").split(",") if a.strip())
    if not sender or not recipients:
        raise AlertSettingsError(
            f"e-mail alerts need {EMAIL_FROM_ENV} and {EMAIL_TO_ENV} "
            f"(comma-separated) besides {SMTP_ENV['host']}"
        )
    return Email(
        host,
        int(port),
        security,
        sender,
        recipients,
        environ.get(SMTP_ENV["user"]) or None,
        environ.get(SMTP_ENV["password"]),
    )


def channels_from_env(environ: Mapping[str, str] = os.environ) -> list[Channel]:
    """The channels the environment configures (none: alerts are only recorded and shown)."""
    return [channel for channel in (_webhook(environ), _email(environ)) if channel]
