"""Delivery channels: how one queued notification reaches one kind of receiver.

A channel's :meth:`deliver` sends a *notification document* (a dict built by
:func:`allele.observe.routing.note_document`) once and either returns (delivered) or raises
:class:`DeliveryError` saying whether a retry can help. Retries, backoff and bookkeeping are the
outbox worker's (:mod:`allele.observe.outbox`); channels are stateless apart from their
configuration.

Every channel carries the document's stable ``id`` so that a receiver can drop a duplicate of an
at-least-once delivery:

* :class:`WebhookChannel`: the JSON document, ``Idempotency-Key: <id>`` header;
* :class:`SlackChannel`: a Slack incoming-webhook payload (``text`` and ``blocks``), the same
  header (Slack ignores it; compatible receivers such as Mattermost accept the payload as is);
* :class:`EmailChannel`: a plain-text e-mail over SMTP whose ``Message-ID`` is derived from the
  id (``<id@allele>``);
* :class:`AlertmanagerChannel`: Prometheus Alertmanager's v2 API (``POST /api/v2/alerts``), the
  alert's fingerprint as the ``allele_fingerprint`` label (Alertmanager itself deduplicates
  alerts by label set).
"""

from __future__ import annotations

import re
import smtplib
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any, Protocol, runtime_checkable
from urllib.parse import urlsplit

from allele.errors import AlleleError, ConfigError


class DeliveryError(AlleleError):
    """A delivery attempt failed; ``retry`` says whether trying again later may succeed."""

    def __init__(self, message: str, *, retry: bool = True) -> None:
        super().__init__(message)
        self.retry = retry


@runtime_checkable
class Channel(Protocol):
    """Sends one notification document; raises :class:`DeliveryError` on failure."""

    name: str

    def deliver(self, doc: Mapping[str, Any]) -> None: ...


def iso(ts: float | None) -> str | None:
    """RFC 3339 UTC text of a timestamp (None stays None)."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, tz=UTC).isoformat().replace("+00:00", "Z")


def check_url(url: str, what: str) -> str:
    """An http(s) URL with a host, or a ConfigError naming ``what``."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{what}: {url!r} is not an http(s) URL with a host")
    return url


def _summary(doc: Mapping[str, Any]) -> str:
    a = doc["alert"]
    text = a.get("annotations", {}).get("summary") or a["name"]
    return str(text)


def subject(doc: Mapping[str, Any]) -> str:
    """``[FIRING] Name: summary`` (``[RESOLVED]``, ``[ESCALATED L2]``) on one line."""
    a = doc["alert"]
    tag = doc["status"].upper()
    if doc.get("kind") == "escalation":
        tag = f"ESCALATED L{doc.get('level', 1)}"
    return re.sub(r"\s+", " ", f"[{tag}] {a['name']}: {_summary(doc)}")[:250]


class _HttpChannel:
    name = "http"

    def __init__(self, url: str, *, timeout_s: float = 5.0,
                 headers: Mapping[str, str] | None = None) -> None:
        self.url = check_url(url, f"{self.name} URL")
        self.timeout_s = timeout_s
        self.headers = dict(headers or {})

    def _post(self, body: Any, doc: Mapping[str, Any], url: str | None = None) -> None:
        import httpx

        try:
            resp = httpx.post(url or self.url, json=body, timeout=self.timeout_s,
                              headers={**self.headers, "Idempotency-Key": str(doc["id"])})
        except httpx.HTTPError as exc:
            raise DeliveryError(f"{type(exc).__name__}: {exc}") from None
        if resp.status_code < 300:
            return
        retry = resp.status_code >= 500 or resp.status_code in (408, 429)
        raise DeliveryError(f"HTTP {resp.status_code}: {resp.text[:200]}", retry=retry)


class WebhookChannel(_HttpChannel):
    """POSTs the notification document as JSON."""

    name = "webhook"

    def deliver(self, doc: Mapping[str, Any]) -> None:
        self._post(dict(doc), doc)


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_payload(doc: Mapping[str, Any]) -> dict[str, Any]:
    """The Slack incoming-webhook message of a notification document."""
    a = doc["alert"]
    lines = [f"*{_slack_escape(subject(doc))}*"]
    desc = a.get("annotations", {}).get("description")
    if desc:
        lines.append(_slack_escape(str(desc)))
    labels = ", ".join(f"{k}={v}" for k, v in sorted(a.get("labels", {}).items()))
    lines.append(f"severity {_slack_escape(a['severity'])}; {_slack_escape(labels)}")
    lines.append(f"id `{_slack_escape(str(doc['id']))}`")
    text = "\n".join(lines)
    return {"text": text, "blocks": [{"type": "section",
                                      "text": {"type": "mrkdwn", "text": text}}]}


class SlackChannel(_HttpChannel):
    """POSTs a Slack-compatible incoming-webhook message."""

    name = "slack"

    def deliver(self, doc: Mapping[str, Any]) -> None:
        self._post(slack_payload(doc), doc)


def message_id(note_id: str) -> str:
    """The e-mail ``Message-ID`` of a notification id (characters outside ``[A-Za-z0-9.-]``
    become ``.``)."""
    return "<" + re.sub(r"[^A-Za-z0-9.\-]", ".", note_id) + "@allele>"


class EmailChannel:
    """Sends a plain-text e-mail over SMTP (optionally STARTTLS and login)."""

    name = "email"

    def __init__(self, host: str, port: int = 25, *, sender: str = "allele@localhost",
                 recipients: Sequence[str] = (), starttls: bool = False,
                 username: str | None = None, password: str | None = None,
                 timeout_s: float = 10.0) -> None:
        if not host or not recipients:
            raise ConfigError("e-mail notifications need an SMTP host and at least one "
                              "recipient")
        self.host, self.port = host, int(port)
        self.sender = sender
        self.recipients = list(recipients)
        self.starttls = starttls
        self.username, self.password = username, password
        self.timeout_s = timeout_s

    def message(self, doc: Mapping[str, Any]) -> EmailMessage:
        """The e-mail of a notification document."""
        a = doc["alert"]
        msg = EmailMessage()
        msg["Subject"] = subject(doc)
        msg["From"] = self.sender
        msg["To"] = ", ".join(self.recipients)
        msg["Message-ID"] = message_id(str(doc["id"]))
        msg["X-Allele-Notification-Id"] = str(doc["id"])
        body = [subject(doc), ""]
        for k, v in sorted(a.get("annotations", {}).items()):
            body.append(f"{k}: {v}")
        body.append("")
        body += [f"{k}={v}" for k, v in sorted(a.get("labels", {}).items())]
        body += ["", f"severity: {a['severity']}", f"started: {iso(a.get('starts_at'))}",
                 f"notification id: {doc['id']}"]
        msg.set_content("\n".join(body) + "\n")
        return msg

    def deliver(self, doc: Mapping[str, Any]) -> None:
        msg = self.message(doc)
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout_s) as smtp:
                if self.starttls:
                    smtp.starttls()
                if self.username:
                    smtp.login(self.username, self.password or "")
                smtp.send_message(msg)
        except smtplib.SMTPResponseException as exc:
            raise DeliveryError(f"SMTP {exc.smtp_code}: {exc.smtp_error!r}",
                                retry=exc.smtp_code < 500) from None
        except smtplib.SMTPRecipientsRefused as exc:
            raise DeliveryError(f"SMTP refused every recipient: {exc.recipients}",
                                retry=False) from None
        except (TimeoutError, smtplib.SMTPException, OSError) as exc:
            raise DeliveryError(f"SMTP {type(exc).__name__}: {exc}") from None


_LABEL_NAME = re.compile(r"[^a-zA-Z0-9_]")


def alertmanager_alert(doc: Mapping[str, Any]) -> dict[str, Any]:
    """One alert of Alertmanager's v2 ``postableAlerts`` for a notification document."""
    a = doc["alert"]
    labels = {}
    for k, v in a.get("labels", {}).items():
        name = _LABEL_NAME.sub("_", str(k)) or "_"
        if name[0].isdigit():
            name = "_" + name
        labels[name] = str(v)
    labels["alertname"] = str(a["name"])
    labels["severity"] = str(a["severity"])
    labels["allele_fingerprint"] = str(a["fingerprint"])
    annotations = {_LABEL_NAME.sub("_", str(k)): str(v)
                   for k, v in a.get("annotations", {}).items()}
    annotations["allele_notification_id"] = str(doc["id"])
    out: dict[str, Any] = {"labels": labels, "annotations": annotations}
    if a.get("starts_at") is not None:
        out["startsAt"] = iso(a["starts_at"])
    if doc["status"] == "resolved":
        out["endsAt"] = iso(a.get("ends_at") or doc.get("sent_at"))
    return out


class AlertmanagerChannel(_HttpChannel):
    """POSTs to Alertmanager's ``/api/v2/alerts`` (``url`` is Alertmanager's base URL)."""

    name = "alertmanager"

    def deliver(self, doc: Mapping[str, Any]) -> None:
        self._post([alertmanager_alert(doc)], doc, self.url.rstrip("/") + "/api/v2/alerts")


def channels_from_settings(settings: Any) -> dict[str, Channel]:
    """The channels configured in ``settings.notify`` (see :class:`allele.config.NotifySettings`),
    by name."""
    n = settings.notify
    out: dict[str, Channel] = {}
    if n.webhook_url:
        out["webhook"] = WebhookChannel(n.webhook_url)
    if n.slack_url:
        out["slack"] = SlackChannel(n.slack_url)
    if n.smtp_host:
        out["email"] = EmailChannel(n.smtp_host, n.smtp_port, sender=n.smtp_from,
                                    recipients=n.smtp_to, starttls=n.smtp_starttls,
                                    username=n.smtp_user, password=n.smtp_password)
    if n.alertmanager_url:
        out["alertmanager"] = AlertmanagerChannel(n.alertmanager_url)
    return out
