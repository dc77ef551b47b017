# Copyright: Phoenix Platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Cutting pg_restore's COPY script into blocks of whole rows, up to the line that ends the data."""

from __future__ import annotations

import io

import pytest

from ansible_collections.phoenix.platform.plugins.module_utils._backups import split_load
from ansible_collections.phoenix.platform.plugins.module_utils._backups.restore import SPLIT_BYTES, entries_to_split
from ansible_collections.phoenix.platform.plugins.module_utils._core.errors import PhoenixError

ROWS = b"1\tplain\n2\tends with a backslash-dot \\\\.\n3\t\\\\.\n4\t\\N\n5\ttab\\there\n"


class Collected:
    """Takes the blocks the COPYs would get."""

    def __init__(self) -> None:
        self.blocks: list[bytes] = []
        self.failures: list[BaseException] = []
        self.closed = False

    def put(self, block) -> None:
        self.blocks.append(bytes(block))

    def close(self) -> None:
        self.closed = True


def blocks_of(data: bytes, size: int) -> list[bytes]:
    return [data[at:at + size] for at in range(0, len(data), size)]


AFTER = b"\n\\unrestrict key\n"  # what pg_restore writes after the line that ends the data
TRAILER = b"\\.\n" + AFTER


@pytest.mark.parametrize("block", [1, 2, 3, 7, 64, 1 << 20])
def test_rows_are_cut_between_lines_and_end_at_the_end_of_data_wherever_the_blocks_fall(monkeypatch, block):
    monkeypatch.setattr(split_load, "BLOCK", block)
    monkeypatch.setattr(split_load, "HELD", len(AFTER) + 1)  # the least that works: most rows go before the end
    copies = Collected()
    split_load._spread(blocks_of(ROWS + TRAILER, block), copies)
    assert b"".join(copies.blocks) == ROWS
    assert all(block.endswith(b"\n") for block in copies.blocks)
    assert copies.closed
    if block < 8:  # the rows went in pieces, not all at the end
        assert len(copies.blocks) >= 3


def test_rows_without_the_line_that_ends_them_were_cut_short():
    copies = Collected()
    with pytest.raises(PhoenixError, match="cut short"):
        split_load._spread(blocks_of(ROWS, 1 << 20), copies)
    assert copies.closed


def test_an_end_of_data_before_the_held_back_bytes_is_not_taken_for_the_end(monkeypatch):
    """Only the stream's last HELD bytes are searched: a longer trailer fails the load rather than passing
    unnoticed."""
    monkeypatch.setattr(split_load, "HELD", len(AFTER))
    with pytest.raises(PhoenixError, match="cut short"):
        split_load._spread(blocks_of(ROWS + TRAILER, 2), Collected())


def test_the_preamble_gives_the_copy_and_the_settings_and_refuses_anything_else():
    script = (b"--\n-- PostgreSQL database dump\n--\n\n\\restrict abc\n\nSET client_encoding = 'UTF8';\n"
              b"SELECT pg_catalog.set_config('search_path', '', false);\n\n"
              b"COPY public.ledger (id, note) FROM stdin;\n" + ROWS)
    statement, settings = split_load._preamble(io.BytesIO(script), "3574; 0 1 TABLE DATA public ledger app\n")
    assert statement == b"COPY public.ledger (id, note) FROM stdin"
    assert settings == [b"SET client_encoding = 'UTF8'", b"SELECT pg_catalog.set_config('search_path', '', false)"]
    with pytest.raises(PhoenixError, match="not one COPY"):
        split_load._preamble(io.BytesIO(b"INSERT INTO public.ledger VALUES (1);\n"), "ledger")


def test_only_a_table_too_big_for_one_job_is_split():
    big, small = SPLIT_BYTES * 3, SPLIT_BYTES
    one_big = [("1; TABLE DATA big\n", big), ("2; TABLE DATA small\n", small), ("3; INDEX\n", 0)]
    assert entries_to_split(one_big, 2) == ["1; TABLE DATA big\n"]
    assert entries_to_split(one_big, 1) == []  # one job: nothing to share
    alike = [("%d; TABLE DATA t%d\n" % (n, n), big) for n in range(4)]
    assert entries_to_split(alike, 2) == []  # pg_restore --jobs keeps both connections busy already
    assert entries_to_split([("1; TABLE DATA tiny\n", SPLIT_BYTES - 1)], 2) == []
