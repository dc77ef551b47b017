"""phoenix_alert: one email through a real SMTP server on loopback, passwords taken out."""

from __future__ import annotations

import email
import email.policy

import pytest
from aiosmtpd.controller import Controller

from ansible_collections.phoenix.platform.plugins.modules import phoenix_alert
from ansible_collections.phoenix.platform.tests.helpers import free_port, run_module


class Inbox:
    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's hook name)
        self.messages.append(email.message_from_bytes(envelope.content, policy=email.policy.default))
        return "250 Message accepted for delivery"


@pytest.fixture
def inbox():
    box = Inbox()
    controller = Controller(box, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield controller.port, box.messages
    controller.stop()


def alert(port, check=False, **options):
    return run_module(phoenix_alert.main, dict({"to": ["ops@example.com"], "subject": "[Phoenix PROD] backup failed",
                                                "body": "pg_dump failed", "smtp_host": "127.0.0.1",
                                                "smtp_port": port}, **options), check=check)


def test_one_email_is_sent_and_check_mode_sends_none(inbox):
    port, received = inbox
    planned = alert(port, check=True)
    assert not planned["changed"] and planned["message_id"] and received == []
    sent = alert(port)
    assert sent["changed"] and len(received) == 1
    assert received[0]["Subject"] == "[Phoenix PROD] backup failed" and received[0]["To"] == "ops@example.com"
    assert received[0]["Message-ID"] == sent["message_id"]


def test_passwords_never_reach_the_email(inbox):
    port, received = inbox
    body = ("could not connect to postgresql://app:Url-Pw-1@db.example.com/phoenix (password=Kw-Pw-2 host=db) "
            "with Known-Pw-3")
    alert(port, body=body, subject="failed with Known-Pw-3", secrets=["Known-Pw-3"])
    text = received[0].as_string()
    for secret in ("Url-Pw-1", "Kw-Pw-2", "Known-Pw-3"):
        assert secret not in text
    assert "db.example.com/phoenix" in received[0].get_content()


@pytest.mark.parametrize("options, message", [
    ({"to": ["ops.example.com"]}, "to must list email addresses"),
    ({"to": [" "]}, "to must list email addresses"),
    ({"smtp_port": 1}, "the alert could not be sent through 127.0.0.1:1"),
])
def test_a_typo_or_an_unreachable_server_is_one_clear_message(inbox, options, message):
    port, received = inbox
    refused = alert(port, **options)
    assert refused["failed"] and message in refused["msg"], refused
    assert received == []
