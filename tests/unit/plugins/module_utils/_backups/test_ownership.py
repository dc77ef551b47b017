# Copyright: Phoenix Platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The owners a dump names, read from its table of contents."""

from __future__ import annotations

from ansible_collections.phoenix.platform.plugins.module_utils._backups.ownership import dump_owners


def test_the_owners_are_the_last_field_of_the_entries_that_have_one():
    toc = [
        ";\n",
        "; Archive created at 2026-12-05 13:21:31 UTC\n",
        "2; 3079 34898 EXTENSION - pgcrypto \n",  # no owner
        "215; 1259 16386 TABLE public orders shop_owner\n",
        '216; 1259 16390 TABLE "Shop data" "Order lines" shop_owner\n',
        "3600; 0 16386 TABLE DATA public orders shop_owner\n",
        "217; 1259 16400 VIEW public report reports_owner\n",
        "\n",
    ]
    assert dump_owners(toc) == {"shop_owner", "reports_owner"}
