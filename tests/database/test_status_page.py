"""The status page as a browser shows it: report.yml's HTML rendered by Debian's chromium, headless."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

from ansible_collections.phoenix.platform.tests.helpers import repo_root

from test_playbooks import ALL, environment_database, last_message, playbook

pytestmark = pytest.mark.slow

HOSTILE_CATEGORY = '<img src=x onerror="document.title=1">'
PLOT_BACKGROUND = (0xEE, 0xF2, 0xF6)
LATENCY_COLOUR = (0xE8, 0x59, 0x0C)
WORLDS_COLOUR = (0x19, 0x71, 0xC2)


def chromium(*args: str) -> subprocess.CompletedProcess:
    binary = shutil.which("chromium")
    assert binary, "Debian's chromium is needed to render the status page: make test-tools installs it"
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars"]
    return subprocess.run([binary, *flags, *args], capture_output=True, text=True, check=True, timeout=120)


class SectionText(HTMLParser):
    """The visible text of each ``<section id=...>``, and every element and attribute name used."""

    def __init__(self) -> None:
        super().__init__()
        self.sections: dict[str, str] = {}
        self.tags: set[str] = set()
        self.attributes: set[str] = set()
        self._current: str | None = None

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        self.attributes.update(name for name, value in attrs)
        if tag == "section":
            self._current = dict(attrs)["id"]
            self.sections[self._current] = ""

    def handle_endtag(self, tag):
        if tag == "section":
            self._current = None

    def handle_data(self, data):
        if self._current:
            self.sections[self._current] = " ".join((self.sections[self._current] + " " + data).split())


def chart_pixels(screenshot: Path, column: int, columns: int) -> dict[str, int]:
    """Pixels of each series inside the plot area (its background's bounding box) of one environment's column."""
    from PIL import Image

    image = Image.open(screenshot).convert("RGB")
    width, height = image.size
    left, right = width * column // columns, width * (column + 1) // columns
    pixels = image.load()
    plot = [(x, y) for x in range(left, right) for y in range(height) if pixels[x, y] == PLOT_BACKGROUND]
    assert plot, "no plot area in column %d of the screenshot" % column
    xs, ys = [x for x, y in plot], [y for x, y in plot]
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    inside = [pixels[x, y] for x in range(x0, x1 + 1) for y in range(y0, y1 + 1)]

    def near(colour, target):
        return all(abs(a - b) <= 40 for a, b in zip(colour, target))

    return {"latency": sum(near(p, LATENCY_COLOUR) for p in inside),
            "worlds": sum(near(p, WORLDS_COLOUR) for p in inside),
            "area": (x1 - x0) * (y1 - y0)}


def record_deploy(env, version: str) -> None:
    """A deploy event, written by the collection's own phoenix_audit as the deploy playbook does."""
    beta = environment_database(env, "phoenix_beta")
    args = {"operation": "deploy.succeeded", "details": {"version": version}, "db_url": beta.url, "stage": "BETA"}
    ran = subprocess.run([os.path.join(os.path.dirname(sys.executable), "ansible"), "phoenix-beta",
                          "-i", "inventories/beta", "-m", "phoenix.platform.phoenix_audit", "-a", json.dumps(args)],
                         cwd=repo_root(), env=env, capture_output=True, text=True, check=False)
    assert ran.returncode == 0, ran.stdout + ran.stderr


def test_status_page_shows_the_three_environments_side_by_side_with_their_history(phoenix_home, tmp_path):
    assert playbook(phoenix_home, "site.yml", *ALL).returncode == 0
    assert playbook(phoenix_home, "seed.yml", "-i", "inventories/local", "-i", "inventories/beta").returncode == 0
    local = environment_database(phoenix_home, "phoenix_local")
    with local.connect() as conn:  # a category as users type them: the page shows it, never runs it
        conn.execute('UPDATE "WorldMeta" SET category = %s WHERE id = %s', (HOSTILE_CATEGORY, "UC_DEMO"))
    assert playbook(phoenix_home, "backup.yml", *ALL).returncode == 0
    assert playbook(phoenix_home, "restore_drill.yml", "-i", "inventories/beta").returncode == 0
    record_deploy(phoenix_home, "9.9.9")
    for round_ in range(3):
        recorded = playbook(phoenix_home, "health.yml", *ALL, "-e", "record=true")
        assert recorded.returncode == 0, "round %d: %s" % (round_, recorded.stdout[-2000:])
    history_before = local.query("SELECT count(*) FROM phoenix.health_history")

    report = playbook(phoenix_home, "report.yml", *ALL, "-e", "report_dir=%s" % tmp_path)
    assert report.returncode == 0, report.stdout[-3000:]
    pages = sorted(tmp_path.glob("phoenix_status_*.html"))
    assert len(pages) == 1 and last_message(report.stdout) == "Status page of LOCAL, BETA, PROD: %s" % pages[0]
    assert local.query("SELECT count(*) FROM phoenix.health_history") == history_before  # the report only reads

    html = pages[0].read_text()
    written = SectionText()
    written.feed(html)
    assert not written.attributes & {"src", "href", "srcset"} and not re.search(r"@import|url\(", html), \
        "the page loads nothing from elsewhere"
    page = SectionText()
    page.feed(chromium("--dump-dom", pages[0].as_uri()).stdout)
    assert list(page.sections) == ["environment-local", "environment-beta", "environment-prod"]
    assert "img" not in page.tags and "script" not in page.tags
    stages = ("environment-local", "environment-beta", "environment-prod")
    local_text, beta_text, prod_text = (page.sections[name] for name in stages)
    assert local_text.startswith("LOCAL healthy Health backups healthy database healthy"), local_text
    assert "Worlds by category %s 1 general 1 onboarding 1 testing 1 total 4" % HOSTILE_CATEGORY in local_text
    assert re.search(r"Last restore drill passed at \S+Z in [\d.]+ s", beta_text), beta_text
    assert re.search(r"Last deploy deploy\.succeeded at \S+Z by \S+ \(version 9\.9\.9\)", beta_text), beta_text
    assert "no deploy recorded" in prod_text and "no drill recorded" in prod_text
    for text in (local_text, beta_text, prod_text):
        assert re.search(r"Backups scheduled \d{4}-\d\d-\d\d \d\d:\d\d [\d.]+ h old [\d.]+ (?:KiB|MiB|Bytes)", text), text
        assert re.search(r"History \(\d+ days\) .* ms .* checks", text), text
        assert int(re.search(r"(\d+) checks", text).group(1)) >= 3

    screenshot = tmp_path / "status.png"
    chromium("--window-size=1400,1200", "--screenshot=%s" % screenshot, pages[0].as_uri())
    for column in range(3):
        drawn = chart_pixels(screenshot, column, 3)
        assert drawn["area"] > 20_000, drawn  # the plot area is there, at a readable size
        assert drawn["latency"] > 100 and drawn["worlds"] > 100, drawn  # both series are drawn in it


def test_status_page_of_an_environment_that_is_down_says_so(phoenix_home, tmp_path):
    assert playbook(phoenix_home, "site.yml", "-i", "inventories/beta").returncode == 0
    report = playbook(phoenix_home, "report.yml", "-i", "inventories/beta", "-e", "report_dir=%s" % tmp_path,
                      "-e", "phoenix_db_url=postgresql://phoenix@127.0.0.1:1/nowhere")
    assert report.returncode == 0, report.stdout[-3000:]
    page = SectionText()
    page.feed(chromium("--dump-dom", next(tmp_path.glob("*.html")).as_uri()).stdout)
    assert re.match(r"BETA unhealthy Health .*database unhealthy", page.sections["environment-beta"])
    assert "no recorded health checks" in page.sections["environment-beta"]
