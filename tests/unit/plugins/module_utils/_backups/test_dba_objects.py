# Copyright: Phoenix Platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The entries of a dump that only a superuser or their owner replaces, told apart from everything else."""

from __future__ import annotations

from ansible_collections.phoenix.platform.plugins.module_utils._backups.dba_objects import dba_entries

# pg_restore --list of a database with a DBA's objects, and application objects named like them
TOC = [
    "; Archive created at 2026-12-05 19:40:02 UTC\n",
    "218; 1255 18731 FUNCTION public ddl_log() postgres\n",
    "2047; 2328 18743 FOREIGN DATA WRAPPER - dummy postgres\n",
    "2048; 1417 18740 SERVER - reports postgres\n",
    "3369; 0 0 COMMENT - SERVER reports postgres\n",
    "3371; 0 0 USER MAPPING - USER MAPPING shop_web SERVER reports postgres\n",
    "216; 1259 18718 TABLE public t shop_owner\n",
    '217; 1259 18719 TABLE public "EVENT TRIGGER - x" shop_owner\n',
    "3356; 6104 18727 PUBLICATION - cdc postgres\n",
    "3357; 6104 18728 PUBLICATION - cdc two shop_owner\n",
    "3358; 6106 18729 PUBLICATION TABLE public cdc two t shop_owner\n",
    "3359; 6237 18730 PUBLICATION TABLES IN SCHEMA s2 cdc two s2 shop_owner\n",
    "3211; 3466 18732 EVENT TRIGGER - ddl_log postgres\n",
    "3374; 0 0 COMMENT - EVENT TRIGGER ddl_log postgres\n",
]


def test_the_entries_only_a_superuser_or_their_owner_replaces_are_named_with_their_owners():
    assert dba_entries(TOC) == [
        ("FOREIGN DATA WRAPPER", "foreign-data wrapper dummy", "postgres"),
        ("SERVER", "foreign server reports", "postgres"),
        ("USER MAPPING", "user mapping shop_web SERVER reports", "postgres"),
        ("PUBLICATION", "publication cdc", "postgres"),
        ("PUBLICATION", "publication cdc two", "shop_owner"),
        ("PUBLICATION TABLE", "publication table public cdc two t", "shop_owner"),
        ("PUBLICATION TABLES IN SCHEMA", "publication tables in schema s2 cdc two s2", "shop_owner"),
        ("EVENT TRIGGER", "event trigger ddl_log", "postgres"),
    ]  # not the function, the comments, nor a table named like an entry
