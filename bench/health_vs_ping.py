"""Per-task cost of phoenix_health against ansible.builtin.ping.

Runs a playbook of 20 phoenix_health tasks and one of 20 ansible.builtin.ping tasks
(local connection, same interpreter), five times each, against a throwaway embedded
cluster, and writes the ratio of the medians to docs/BENCHMARKS.md.

    .venv/bin/python bench/health_vs_ping.py [--runs 5] [--tasks 20]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, throwaway_cluster, url
from report import write_section

PLAY = """- hosts: localhost
  gather_facts: false
  tasks:
{tasks}"""
HEALTH_TASK = """    - phoenix.platform.phoenix_health:
        db_url: "{url}"
        stage: LOCAL
"""
PING_TASK = "    - ansible.builtin.ping:\n"


def time_playbook(path: Path, runs: int, env: dict[str, str]) -> list[float]:
    command = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,", "-c", "local",
               "-e", "ansible_python_interpreter=" + sys.executable, str(path)]
    timings = []
    for _run in range(runs):
        started = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True, env=env, cwd=ROOT)
        timings.append(time.perf_counter() - started)
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--tasks", type=int, default=20)
    args = parser.parse_args()

    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"))
    with throwaway_cluster(55471) as cluster, tempfile.TemporaryDirectory() as work:
        cluster.ensure_databases(["bench"])
        db_url = url(cluster, "bench")
        subprocess.run([str(Path(sys.executable).parent / "ansible"), "localhost", "-c", "local",
                        "-e", "ansible_python_interpreter=" + sys.executable,
                        "-m", "phoenix.platform.phoenix_schema", "-a", "db_url=%s stage=LOCAL" % db_url],
                       check=True, capture_output=True, env=env, cwd=ROOT)
        playbooks = {
            "empty": PLAY.format(tasks="    - ansible.builtin.meta: noop\n"),
            "ping": PLAY.format(tasks=PING_TASK * args.tasks),
            "health": PLAY.format(tasks=HEALTH_TASK.format(url=db_url) * args.tasks),
        }
        medians = {}
        for name, text in playbooks.items():
            path = Path(work) / (name + ".yml")
            path.write_text(text)
            medians[name] = statistics.median(time_playbook(path, args.runs, env))

    per_task = {name: (medians[name] - medians["empty"]) / args.tasks for name in ("ping", "health")}
    ratio = medians["health"] / medians["ping"]
    lines = [
        "%d tasks per playbook, median of %d runs, local connection, %s cores." % (args.tasks, args.runs, os.cpu_count()),
        "",
        "| playbook | median wall time | per task (over an empty playbook) |",
        "|---|---|---|",
        "| empty (one noop) | %.2f s | – |" % medians["empty"],
        "| %d × `ansible.builtin.ping` | %.2f s | %.3f s |" % (args.tasks, medians["ping"], per_task["ping"]),
        "| %d × `phoenix.platform.phoenix_health` | %.2f s | %.3f s |" % (args.tasks, medians["health"], per_task["health"]),
        "",
        "**Ratio health / ping (whole playbook): %.2f×**; per task: %.2f×." % (ratio, per_task["health"] / per_task["ping"]),
    ]
    write_section("Per-task overhead: phoenix_health vs ansible.builtin.ping", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
