"""Write one benchmark's section of docs/BENCHMARKS.md, keeping the others."""

from __future__ import annotations

import datetime
import platform
import re
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent.parent / "docs" / "BENCHMARKS.md"
HEADER = """# Benchmarks

Ratios against what a user would otherwise run, measured by the scripts in `bench/`
(`make bench`). Timings on shared machines are noisy: compare ratios, not seconds.
"""


def write_section(title: str, body: str) -> None:
    text = BENCHMARKS.read_text() if BENCHMARKS.exists() else HEADER
    stamp = "_Measured %s on %s, Python %s._" % (
        datetime.date.today().isoformat(), platform.machine(), platform.python_version())
    section = "## %s\n\n%s\n\n%s\n" % (title, stamp, body.strip())
    pattern = re.compile(r"^## %s\n.*?(?=^## |\Z)" % re.escape(title), re.MULTILINE | re.DOTALL)
    if pattern.search(text):
        text = pattern.sub(lambda _match: section + "\n", text).rstrip() + "\n"
    else:
        text = text.rstrip() + "\n\n" + section
    BENCHMARKS.parent.mkdir(exist_ok=True)
    BENCHMARKS.write_text(text)
