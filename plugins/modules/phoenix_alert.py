#!/usr/bin/python
# Copyright: Phoenix Platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: phoenix_alert
short_description: Send one alert email through an SMTP server
version_added: 0.1.0
description:
  - Sends one plain-text email to O(to) through O(smtp_host). Passwords are taken out of the subject and body
    first, O(smtp_password), O(secrets) and any in a connection string or URL.
  - The collection's scheduled playbooks send one when a run fails or finds the environment degraded and
    C(phoenix_alerts_enabled) is true; a healthy run sends nothing.
options:
  to:
    description: Recipients.
    type: list
    elements: str
    required: true
  sender:
    description: The From address.
    type: str
    default: phoenix@localhost
  subject:
    description: The subject line.
    type: str
    required: true
  body:
    description: The text.
    type: str
    required: true
  smtp_host:
    description: SMTP server.
    type: str
    default: localhost
  smtp_port:
    description: SMTP port.
    type: int
    default: 25
  smtp_starttls:
    description: Upgrade the connection with STARTTLS before logging in.
    type: bool
    default: false
  smtp_username:
    description: SMTP login, if the server wants one.
    type: str
  smtp_password:
    description: SMTP password.
    type: str
  secrets:
    description: Other values that must never appear in the email (e.g. the database password).
    type: list
    elements: str
    default: []
attributes:
  check_mode:
    description: Can run in check_mode.
    support: full
    details: Composes the email and sends nothing.
  diff_mode:
    description: Will return details on what has changed.
    support: none
author:
  - Phoenix Platform maintainers (@phoenix-platform)
"""

EXAMPLES = r"""
- name: Tell the on-call team the backup failed
  phoenix.platform.phoenix_alert:
    to: [platform-oncall@example.com]
    subject: "[Phoenix PROD] backup failed"
    body: "{{ ansible_failed_result.msg }}"
    smtp_host: mail.example.com
"""

RETURN = r"""
message_id:
  description: The Message-ID of the email sent (or composed, in check mode).
  returned: success
  type: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.phoenix.platform.plugins.module_utils._alerts.mail import Alert, message, send
from ansible_collections.phoenix.platform.plugins.module_utils._core.errors import PhoenixError


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "to": {"type": "list", "elements": "str", "required": True},
            "sender": {"type": "str", "default": "phoenix@localhost"},
            "subject": {"type": "str", "required": True},
            "body": {"type": "str", "required": True},
            "smtp_host": {"type": "str", "default": "localhost"},
            "smtp_port": {"type": "int", "default": 25},
            "smtp_starttls": {"type": "bool", "default": False},
            "smtp_username": {"type": "str"},
            "smtp_password": {"type": "str", "no_log": True},
            "secrets": {"type": "list", "elements": "str", "default": [], "no_log": True},
        },
        supports_check_mode=True,
    )
    params = module.params
    recipients = [address.strip() for address in params["to"] if address.strip()]
    if not recipients or any("@" not in address for address in recipients):
        module.fail_json(msg="to must list email addresses, got %s" % (params["to"] or "none"))
    alert = Alert(recipients, params["sender"], params["subject"], params["body"], params["smtp_host"],
                  params["smtp_port"], params["smtp_starttls"], params["smtp_username"], params["smtp_password"],
                  tuple(params["secrets"]))
    try:
        mail = message(alert) if module.check_mode else send(alert)
    except PhoenixError as exc:
        module.fail_json(msg=exc.msg)
    module.exit_json(changed=not module.check_mode, message_id=mail["Message-ID"])


if __name__ == "__main__":
    main()
