# Copyright: Phoenix Platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""World lists rendered as json, yaml, csv and markdown."""

from __future__ import annotations

import csv
import io
import json

import yaml

from ansible_collections.phoenix.platform.plugins.module_utils._worlds.report import render

WORLDS = [
    {"id": "GENERAL_001", "name": "General", "description": "The template", "category": "general",
     "environment": "LOCAL", "isActive": True, "isTemplate": True, "expired": False, "expiresAt": None,
     "tags": ["base"], "rows": {"User": 2, "Artifact": 5}},
    {"id": "UC_PIPES", "name": 'Pipes | "quotes", commas\nand lines', "description": None, "category": None,
     "environment": "LOCAL", "isActive": False, "isTemplate": False, "expired": True,
     "expiresAt": "2026-11-22T10:00:00+00:00", "tags": ["a", "b"], "rows": {}},
]


def test_json_and_yaml_round_trip():
    assert json.loads(render(WORLDS, "json")) == WORLDS
    assert yaml.safe_load(render(WORLDS, "yaml")) == WORLDS


def test_csv_quotes_what_would_break_a_field():
    parsed = list(csv.DictReader(io.StringIO(render(WORLDS, "csv"))))
    assert [row["id"] for row in parsed] == ["GENERAL_001", "UC_PIPES"]
    assert parsed[1]["name"] == WORLDS[1]["name"]
    assert (parsed[0]["active"], parsed[1]["expired"], parsed[0]["rows"], parsed[1]["tags"]) == ("true", "true", "7", "a b")


def test_markdown_has_one_row_per_world_and_a_section_per_world_with_rows():
    text = render(WORLDS, "markdown")
    assert text.startswith("# Worlds (2)\n")
    table_rows = [line for line in text.splitlines() if line.startswith("| `")]
    assert len(table_rows) == 2
    assert "| `GENERAL_001` | General | general | yes | yes | never | 7 |" in table_rows
    assert "Pipes \\| \"quotes\", commas and lines" in table_rows[1] and "| expired |" in table_rows[1]
    assert "## GENERAL_001\n\nThe template\n" in text and "| Artifact | 5 |" in text
    assert "## UC_PIPES" not in text  # no rows, no section
