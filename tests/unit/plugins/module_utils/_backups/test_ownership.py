# Copyright: Phoenix Platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The owners a dump names, read from its table of contents."""

from __future__ import annotations

from ansible_collections.phoenix.platform.plugins.module_utils._backups.ownership import dropped_entries, dump_owners


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


def test_the_entries_whose_objects_clean_drops_are_read_by_catalog_with_their_names():
    toc = [
        "; Archive created at 2026-12-05 20:01:12 UTC\n",
        "7; 2615 18723 SCHEMA - reports postgres\n",
        "218; 1255 18731 FUNCTION public shop_helper(integer, text) postgres\n",
        "216; 1259 18718 TABLE reports daily totals postgres\n",
        "217; 1259 18719 SEQUENCE public orders_id_seq shop_owner\n",
        "3380; 0 0 SEQUENCE OWNED BY public orders_id_seq shop_owner\n",
        "3360; 0 18718 TABLE DATA reports daily totals postgres\n",
        "3213; 2606 18722 CONSTRAINT reports daily totals daily_pkey postgres\n",
        "230; 1259 18740 MATERIALIZED VIEW public sales_by_day shop_owner\n",
        "240; 1247 18750 TYPE public order_state shop_owner\n",
        "3369; 0 0 COMMENT - SCHEMA reports postgres\n",
    ]
    assert dropped_entries(toc) == {
        2615: [(18723, "schema reports", "reports")],
        1255: [(18731, "function public.shop_helper(integer, text)", "shop_helper")],
        1259: [(18718, "table reports.daily totals", "daily totals"),
               (18719, "sequence public.orders_id_seq", "orders_id_seq"),
               (18740, "materialized view public.sales_by_day", "sales_by_day")],
        1247: [(18750, "type public.order_state", "order_state")],
    }  # not the rows, the comment, the constraint (its table's), nor the sequence's owning column


def test_operators_collations_text_search_and_statistics_are_read_by_their_catalogs_too():
    toc = [  # pg_restore 15 --list of objects a DBA made in the application's schema
        "2853; 3456 31446 COLLATION s german ci dba_owner\n",
        "1642; 2617 31445 OPERATOR s === dba_owner\n",
        "1974; 2753 31450 OPERATOR FAMILY s cls postgres\n",
        "1827; 2616 31451 OPERATOR CLASS s cls dba_owner\n",
        "2982; 2607 31457 CONVERSION s conv dba_owner\n",
        "2011; 3600 31448 TEXT SEARCH DICTIONARY s dict dba_owner\n",
        "2041; 3602 31447 TEXT SEARCH CONFIGURATION s cfg dba_owner\n",
        "3206; 3381 31456 STATISTICS s st dba_owner\n",
        "310; 2612 31460 PROCEDURAL LANGUAGE - plsample postgres\n",
        "3390; 0 0 ACL - LANGUAGE plsample postgres\n",
    ]
    assert dropped_entries(toc) == {
        3456: [(31446, "collation s.german ci", "german ci")],
        2617: [(31445, "operator s.===", "===")],
        2753: [(31450, "operator family s.cls", "cls")],
        2616: [(31451, "operator class s.cls", "cls")],
        2607: [(31457, "conversion s.conv", "conv")],
        3600: [(31448, "text search dictionary s.dict", "dict")],
        3602: [(31447, "text search configuration s.cfg", "cfg")],
        3381: [(31456, "statistics s.st", "st")],
        2612: [(31460, "procedural language plsample", "plsample")],
    }
