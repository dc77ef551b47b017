# Copyright: Phoenix Platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Who is acting."""

from __future__ import annotations

from ansible_collections.phoenix.platform.plugins.module_utils._core.audit import default_actor


def test_actor_prefers_the_awx_job():
    assert default_actor({"AWX_JOB_ID": "42"}) == "awx-job-42"
    assert default_actor({"JOB_ID": "7"}) == "awx-job-7"
    assert "@" in default_actor({})
