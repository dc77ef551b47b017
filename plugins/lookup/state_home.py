# Copyright: Phoenix Platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: state_home
short_description: The directory Phoenix keeps its state in on the controller
version_added: 0.1.0
description:
  - E(PHOENIX_HOME), else C($XDG_DATA_HOME/phoenix), else C(~/.local/share/phoenix).
  - Backups, blobs, exports, the embedded database and the application env file live there, outside any collection
    (C(ansible-galaxy collection install --force) replaces one) and outside AWX's per-job project copy.
author:
  - Phoenix Platform maintainers (@phoenix-platform)
"""

EXAMPLES = r"""
- name: Where the backups go by default
  ansible.builtin.debug:
    msg: "{{ lookup('phoenix.platform.state_home') }}/backups"
"""

RETURN = r"""
_raw:
  description: The state directory (one element).
  type: list
  elements: str
"""

from ansible.plugins.lookup import LookupBase

from ansible_collections.phoenix.platform.plugins.module_utils._core.files import default_state_home


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        return [default_state_home()]
