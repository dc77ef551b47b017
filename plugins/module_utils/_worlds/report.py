# Copyright: Phoenix Platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Rendering a world list as json, yaml, csv or markdown (Jinja2 templates for the last two)."""

from __future__ import annotations

import json
from typing import Any

FORMATS = ("json", "yaml", "csv", "markdown")

CSV_TEMPLATE = """\
id,name,category,environment,active,template,expired,expires_at,tags,rows
{% for w in worlds -%}
{{ w.id | csv }},{{ w.name | csv }},{{ w.category | csv }},{{ w.environment }},{{ w.isActive | lower }},\
{{ w.isTemplate | lower }},{{ w.expired | lower }},{{ w.expiresAt or '' }},{{ w.tags | join(' ') | csv }},\
{{ w.rows.values() | sum }}
{% endfor %}"""

MARKDOWN_TEMPLATE = """\
# Worlds ({{ worlds | length }})

| id | name | category | active | template | expires | rows |
|---|---|---|---|---|---|---|
{% for w in worlds -%}
| `{{ w.id }}` | {{ w.name | md }} | {{ w.category | md }} | {{ 'yes' if w.isActive else 'no' }} \
| {{ 'yes' if w.isTemplate else 'no' }} | {{ 'expired' if w.expired else (w.expiresAt or 'never') }} \
| {{ w.rows.values() | sum }} |
{% endfor %}
{%- for w in worlds if w.rows %}

## {{ w.id }}
{% if w.description %}
{{ w.description }}
{% endif %}
| table | rows |
|---|---|
{% for table, n in w.rows | dictsort -%}
| {{ table }} | {{ n }} |
{% endfor %}
{%- endfor %}
"""


def _csv_field(value: Any) -> str:
    text = "" if value is None else str(value)
    if any(ch in text for ch in ',"\n'):
        return '"%s"' % text.replace('"', '""')
    return text


def _markdown_cell(value: Any) -> str:
    return "" if value is None else str(value).replace("|", "\\|").replace("\n", " ")


def render(worlds: list[dict[str, Any]], fmt: str) -> str:
    if fmt == "json":
        return json.dumps(worlds, indent=2, sort_keys=True, default=str)
    if fmt == "yaml":
        import yaml

        return yaml.safe_dump(worlds, sort_keys=True, default_flow_style=False)
    from jinja2 import Environment

    environment = Environment(autoescape=False, keep_trailing_newline=True)  # plain text, not HTML
    environment.filters.update(csv=_csv_field, md=_markdown_cell)
    template = CSV_TEMPLATE if fmt == "csv" else MARKDOWN_TEMPLATE
    return environment.from_string(template).render(worlds=worlds)
