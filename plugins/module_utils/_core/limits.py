# Copyright: Phoenix Platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Bounds of the numeric options, checked once for every module before it connects.

Outside them a value is a typo, or PostgreSQL's arithmetic overflows (now() + 10^14 hours)
and the damage shows later: a world nobody can list, a backup published before its
retention fails.
"""

from __future__ import annotations

from typing import Any

MAX_HOURS = 876_000  # 100 years; later times overflow timestamp arithmetic
MAX_RETENTION_DAYS = 36_500

OPTION_RANGES: dict[str, tuple[int, int]] = {
    "cleanup_after_hours": (0, MAX_HOURS),
    "max_age_hours": (0, MAX_HOURS),
    "fresh_within_hours": (0, MAX_HOURS),
    "retention_days": (0, MAX_RETENTION_DAYS),
    "history_retention_days": (1, MAX_RETENTION_DAYS),
    "terminate_idle_minutes": (0, MAX_HOURS * 60),
    "keep_min": (0, 1_000_000),
    "jobs": (1, 128),
    "lock_timeout": (0, 86_400),
    "connect_timeout": (1, 3_600),
    "max_worlds": (0, 1_000_000),
}


def range_problem(params: dict[str, Any]) -> str | None:
    """The first option outside its bounds, in words, or None."""
    for name, (low, high) in OPTION_RANGES.items():
        value = params.get(name)
        if value is not None and not low <= value <= high:
            return "%s must be from %d to %d, got %s" % (name, low, high, value)
    return None


def nul_byte_option(value: Any, name: str = "") -> str | None:
    """The name of the first option (dotted into dicts and lists) whose text holds a NUL byte, which
    PostgreSQL text cannot store and C tools read as the end of the string."""
    if isinstance(value, str):
        return name if "\x00" in value else None
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        found = nul_byte_option(item, "%s.%s" % (name, key) if name else str(key))
        if found:
            return found
    return None
