# Copyright: Phoenix Platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One alert email through an SMTP server. Whatever the playbook puts in it, passwords are taken out first:
those the module knows, and any in a connection string or URL."""

from __future__ import annotations

import smtplib
import socket
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from ansible_collections.phoenix.platform.plugins.module_utils._core.connection import redact
from ansible_collections.phoenix.platform.plugins.module_utils._core.errors import PhoenixError

TIMEOUT_SECONDS = 30


@dataclass
class Alert:
    to: list[str]
    sender: str
    subject: str
    body: str
    smtp_host: str = "localhost"
    smtp_port: int = 25
    starttls: bool = False
    username: str | None = None
    password: str | None = None
    secrets: tuple[str, ...] = ()  # known passwords that must never be sent


def message(alert: Alert) -> EmailMessage:
    secrets = alert.secrets + ((alert.password,) if alert.password else ())
    mail = EmailMessage()
    mail["From"] = alert.sender
    mail["To"] = ", ".join(alert.to)
    mail["Subject"] = " ".join(redact(alert.subject, secrets).split())  # one header line
    mail["Date"] = formatdate(localtime=False)
    mail["Message-ID"] = make_msgid(domain="phoenix.platform")
    mail.set_content(redact(alert.body, secrets))
    return mail


def send(alert: Alert) -> EmailMessage:
    mail = message(alert)
    try:
        with smtplib.SMTP(alert.smtp_host, alert.smtp_port, timeout=TIMEOUT_SECONDS) as smtp:
            if alert.starttls:
                smtp.starttls()
            if alert.username:
                smtp.login(alert.username, alert.password or "")
            smtp.send_message(mail)
    except (OSError, smtplib.SMTPException, socket.timeout) as exc:
        raise PhoenixError("the alert could not be sent through %s:%d: %s"
                           % (alert.smtp_host, alert.smtp_port, redact(str(exc), alert.secrets))) from None
    return mail
