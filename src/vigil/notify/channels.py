"""Delivery to each channel type. A send either returns or raises."""

from __future__ import annotations

import base64
import email.policy
import json
import smtplib
import ssl
import subprocess
import urllib.request
import uuid
from collections.abc import Callable
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

from vigil.children import child_env
from vigil.config.schema import (
    AppriseNotify,
    CommandNotify,
    EmailNotify,
    HealthchecksNotify,
    WebhookNotify,
    import_extra,
)
from vigil.config.secrets import read_secret
from vigil.errors import BackupError

USER_AGENT = "vigil-backup"
_RID_NAMESPACE = uuid.UUID("6b1b0a7e-2d54-4c4e-9b7a-7669676c0001")


def run_uuid(run_id: str) -> str:
    """healthchecks.io wants a UUID as rid: derive one from the run id, the same every time."""
    return str(uuid.uuid5(_RID_NAMESPACE, run_id))


def _tls_context(cfg: EmailNotify) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(cfg.tls_ca_file) if cfg.tls_ca_file else None)
    if not cfg.tls_verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def send_email(cfg: EmailNotify, msg: dict[str, Any]) -> None:
    # Never fold the subject (capped at 200 chars): the folder breaks it right
    # after "Subject:", and some readers then show a leading space.
    mail = EmailMessage(policy=email.policy.default.clone(max_line_length=998))
    mail["Subject"] = msg["subject"]
    mail["From"] = cfg.from_
    mail["To"] = ", ".join(cfg.to)
    mail["Date"] = formatdate(localtime=True)
    mail["Message-ID"] = make_msgid(domain=msg.get("host") or None)
    mail["X-Vigil-Event"] = msg["event"]
    if msg.get("run_id"):
        mail["X-Vigil-Run"] = msg["run_id"]
    mail.set_content(msg["body"])
    timeout = cfg.timeout.total_seconds()
    port = cfg.smtp_port or (465 if cfg.ssl else 587 if cfg.starttls else 25)
    if cfg.ssl:
        server: smtplib.SMTP = smtplib.SMTP_SSL(cfg.smtp_host, port, timeout=timeout, context=_tls_context(cfg))
    else:
        server = smtplib.SMTP(cfg.smtp_host, port, timeout=timeout)
    with server:
        if cfg.starttls:
            server.starttls(context=_tls_context(cfg))
        if cfg.username:
            password = read_secret(f"notify {cfg.name}", "password", cfg.password, cfg.password_env,
                                   cfg.password_file) or ""
            _login(server, cfg.username, password)
        server.send_message(mail)


def _login(server: smtplib.SMTP, user: str, password: str) -> None:
    if (user + password).isascii():
        server.login(user, password)
        return
    # smtplib encodes credentials as ASCII; AUTH PLAIN (RFC 4616) carries UTF-8.
    server.ehlo_or_helo_if_needed()
    token = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
    code, resp = server.docmd("AUTH", f"PLAIN {token}")
    if code != 235:
        raise smtplib.SMTPAuthenticationError(code, resp)


def _http(url: str, data: bytes | None, headers: dict[str, str], timeout: float) -> None:
    req = urllib.request.Request(url, data=data, method="POST" if data is not None else "GET",
                                 headers={"User-Agent": USER_AGENT, **headers})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        if not 200 <= resp.status < 300:
            raise BackupError(f"{url} answered HTTP {resp.status}")
        resp.read()


def send_webhook(cfg: WebhookNotify, msg: dict[str, Any]) -> None:
    body = {k: v for k, v in msg.items() if k != "body"}
    _http(cfg.url, json.dumps(body).encode(), {"Content-Type": "application/json", **cfg.headers},
          cfg.timeout.total_seconds())


HC_SUFFIX = {"success": "", "recovered": "", "failure": "/fail", "unhealthy": "/fail", "skipped": "/log",
             "test": "/log", "start": "/start"}


def healthchecks_url(cfg: HealthchecksNotify, event: str, run_id: str | None) -> str:
    url = cfg.url.rstrip("/") + HC_SUFFIX[event]
    return f"{url}?rid={run_uuid(run_id)}" if run_id else url


def ping_start(cfg: HealthchecksNotify, run_id: str, timeout: float) -> None:
    """healthchecks.io's /start: the external dead man's switch starts counting."""
    _http(healthchecks_url(cfg, "start", run_id), b"", {}, min(timeout, cfg.timeout.total_seconds()))


def send_healthchecks(cfg: HealthchecksNotify, msg: dict[str, Any]) -> None:
    body = msg.get("log_tail") or msg["subject"]
    starter = f"\nstarted by: {msg['started_by']}" if msg.get("started_by") else ""
    text = f"{msg['subject']}\nrun: {msg.get('run_id') or '-'}{starter}\n\n{body}"
    _http(healthchecks_url(cfg, msg["event"], msg.get("run_id")), text.encode()[-100_000:],
          {"Content-Type": "text/plain; charset=utf-8"}, cfg.timeout.total_seconds())


def send_command(cfg: CommandNotify, msg: dict[str, Any]) -> None:
    env = child_env({
        "VIGIL_EVENT": msg["event"],
        "VIGIL_JOB": msg["job"],
        "VIGIL_HOST": msg.get("host") or "",
        "VIGIL_RUN_ID": msg.get("run_id") or "",
        "VIGIL_OUTCOME": msg.get("outcome") or msg.get("status") or "",
        "VIGIL_STEP": msg.get("step") or "",
        "VIGIL_ERROR": msg.get("error") or "",
        "VIGIL_SUBJECT": msg["subject"],
        "VIGIL_WARNINGS": "\n".join(msg.get("warnings") or []),
        "VIGIL_BYTES": str(msg.get("bytes") or ""),
        "VIGIL_BACKUP_ID": msg.get("backup_id") or "",
        "VIGIL_STARTED_BY": msg.get("started_by") or "",
        "VIGIL_STARTED_BY_CHAIN": "\n".join(msg.get("started_by_chain") or []),
    })
    proc = subprocess.run(cfg.argv, input=msg["body"].encode(), env=env, capture_output=True,
                          timeout=cfg.timeout.total_seconds(), check=False)
    if proc.returncode != 0:
        err = proc.stderr.decode(errors="replace").strip().splitlines()[-1:] or [""]
        raise BackupError(f"command {cfg.argv[0]} exited with status {proc.returncode}: {err[0]}")


def send_apprise(cfg: AppriseNotify, msg: dict[str, Any]) -> None:
    apprise = import_extra("apprise", f"notify {cfg.name}")

    ap = apprise.Apprise()
    for url in cfg.urls:
        if not ap.add(url):
            raise BackupError(f"apprise does not understand the URL scheme of {url.split(':', 1)[0]}://...")
    if not ap.notify(title=msg["subject"], body=msg["body"]):
        raise BackupError("apprise could not deliver to every URL")


SENDERS = {"email": send_email, "webhook": send_webhook, "healthchecks": send_healthchecks,
           "command": send_command, "apprise": send_apprise}


def send(cfg: Any, msg: dict[str, Any]) -> None:
    sender: Callable[[Any, dict[str, Any]], None] = SENDERS[cfg.type]  # type: ignore[assignment]
    sender(cfg, msg)


def describe(cfg: Any) -> str:
    target = {"email": lambda c: ", ".join(c.to), "webhook": lambda c: c.url.split("?")[0],
              "healthchecks": lambda c: c.url.split("?")[0], "command": lambda c: c.argv[0],
              "apprise": lambda c: f"{len(c.urls)} URL(s)"}[cfg.type](cfg)  # type: ignore[no-untyped-call]
    return f"{cfg.type} {cfg.name} ({target})"
