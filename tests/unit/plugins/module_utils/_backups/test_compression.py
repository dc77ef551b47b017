# Copyright: Phoenix Platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reading a directory dump's table data files back in this process, as pg_dump compressed them."""

from __future__ import annotations

import gzip
import io
import os
import sys

import lz4.frame
import pytest
import zstandard

from ansible_collections.phoenix.platform.plugins.module_utils._backups.compression import rows_reader
from ansible_collections.phoenix.platform.plugins.module_utils._core.errors import PhoenixError

ROWS = b"".join(b"%d\tW%d\t%s\n" % (n, n % 100, os.urandom(16).hex().encode()) for n in range(20000)) + b"\\.\n\n\n"
STORED = {".dat": ROWS, ".dat.gz": gzip.compress(ROWS), ".dat.zst": zstandard.ZstdCompressor(level=3).compress(ROWS),
          ".dat.lz4": lz4.frame.compress(ROWS)}


def read(name: str, stored: bytes, block: int) -> list[bytes]:
    reader = rows_reader(name)
    assert reader is not None, name
    return list(reader(io.BytesIO(stored), block))


@pytest.mark.parametrize("suffix", sorted(STORED))
@pytest.mark.parametrize("block", [1000, 1 << 20])
def test_a_data_file_reads_back_its_rows_in_blocks_no_bigger_than_asked(suffix, block):
    blocks = read("database/3578" + suffix, STORED[suffix], block)
    assert b"".join(blocks) == ROWS
    assert max(len(piece) for piece in blocks) <= block
    if block < len(ROWS):
        assert len(blocks) > 1


@pytest.mark.parametrize("suffix, compress", [(".dat.gz", gzip.compress), (".dat.lz4", lz4.frame.compress)])
def test_members_or_frames_one_after_another_read_as_one_stream(suffix, compress):
    halves = compress(ROWS[:1000]) + compress(ROWS[1000:])
    assert b"".join(read("database/1" + suffix, halves, 4096)) == ROWS


@pytest.mark.parametrize("suffix, message", [
    (".dat.gz", "the gzip data ends within a member: the file was cut short"),
    (".dat.lz4", "the lz4 data cannot be read: Compressed file ended before the end-of-stream marker")])
def test_gzip_or_lz4_cut_short_fails_instead_of_ending_early(suffix, message):
    with pytest.raises(PhoenixError, match=message):
        read("database/1" + suffix, STORED[suffix][:len(STORED[suffix]) // 2], 4096)


def test_zstd_cut_short_reads_as_rows_without_their_end():
    """The zstd library ends a stream cut within a frame without a word: what was read lacks the line that ends
    the rows, which the load refuses (split_load)."""
    stored = STORED[".dat.zst"]
    for cut in (len(stored) // 2, len(stored) - 3):
        rows = b"".join(read("database/1.dat.zst", stored[:cut], 4096))
        assert ROWS.startswith(rows) and len(rows) < len(ROWS)
        assert b"\\.\n" not in rows


def test_damaged_gzip_fails_with_the_method_named():
    """(zstd frames as pg_dump writes them carry no checksum of their own: the manifest's catches damage first.)"""
    stored = STORED[".dat.gz"]
    damaged = stored[:100] + bytes(byte ^ 0xFF for byte in stored[100:200]) + stored[200:]
    with pytest.raises(PhoenixError, match="the gzip data cannot be read"):
        read("database/1.dat.gz", damaged, 4096)


def test_not_lz4_at_all_fails_with_the_method_named():
    with pytest.raises(PhoenixError, match="the lz4 data cannot be read: .*frameType_unknown"):
        read("database/1.dat.lz4", ROWS, 4096)


def test_what_this_process_cannot_decompress_is_left_to_pg_restore(monkeypatch):
    assert rows_reader("database/1.dat.bz2") is None
    monkeypatch.setitem(sys.modules, "zstandard", None)  # not installed
    monkeypatch.setitem(sys.modules, "lz4.frame", None)
    assert rows_reader("database/1.dat.zst") is None
    assert rows_reader("database/1.dat.lz4") is None
    assert rows_reader("database/1.dat.gz") is not None
