# Copyright: Phoenix Platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Advisory lock keys."""

from __future__ import annotations

from ansible_collections.phoenix.platform.plugins.module_utils._core.locks import lock_key


def test_lock_keys_are_stable_signed_64_bit_and_distinct():
    assert lock_key("schema") == lock_key("schema")
    assert lock_key("schema") != lock_key("world:A")
    assert -(2 ** 63) <= lock_key("schema") < 2 ** 63
