# Copyright: Phoenix Platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One Prometheus text file per stage and job: ``phoenix_<stage>_<job>.prom``; ``phoenix_<stage>_<server>_<job>.prom``
for one of a stage's several servers (a standby's jobs, say), whose samples get a ``server`` label.

Every run writes the file whole (a temporary file renamed over the old one, so a reader never sees half of it).
``phoenix_<job>_last_success_timestamp_seconds`` moves only when the job succeeded: a failed run carries the
previous value over, so an alert on its age still fires while runs keep failing.
"""

from __future__ import annotations

import math
import os
import re
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping

from ansible_collections.phoenix.platform.plugins.module_utils._core.errors import PhoenixError
from ansible_collections.phoenix.platform.plugins.module_utils._core.files import fsync_path

JOB = re.compile(r"^[a-z][a-z0-9_]*$")
# A sample name as the playbooks give it: a metric name, optionally with labels in Prometheus syntax.
SAMPLE = re.compile(r'^([a-z_][a-z0-9_]*)(?:\{((?:[a-z_][a-z0-9_]*="[^"\\\n]*",?)*)\})?$')
LABEL = re.compile(r'([a-z_][a-z0-9_]*)="([^"\\\n]*)"')
WRITTEN = re.compile(r"^([a-z_][a-z0-9_]*)\{([^}]*)\} (\S+)$", re.MULTILINE)


@dataclass
class MetricsRequest:
    directory: Path
    stage: str
    job: str
    succeeded: bool
    values: Mapping[str, Any]
    now: float
    server: str | None = None

    @property
    def common_labels(self) -> dict[str, str]:
        """The labels of every sample."""
        return {"stage": self.stage, **({"server": self.server} if self.server else {})}


def path_of(directory: Path, stage: str, job: str, server: str | None = None) -> Path:
    if server is not None and not JOB.match(server):
        raise PhoenixError("server %r is not a file and label name part: use lower case letters, digits and _ (e.g. "
                           "standby)" % server)
    return directory / ("phoenix_%s.prom" % "_".join(part for part in (stage.lower(), server, job) if part))


def render(request: MetricsRequest, previous: str | None) -> str:
    """The file's new text. Names get the ``phoenix_`` prefix and every sample the ``stage`` label."""
    if not JOB.match(request.job):
        raise PhoenixError("job %r is not a metric name part: use lower case letters, digits and _ (e.g. "
                           "restore_drill)" % request.job)
    job = "phoenix_%s" % request.job
    last_success = request.now if request.succeeded else _last_success(previous, job)
    samples: dict[str, list[tuple[dict[str, str], float]]] = {
        "%s_last_run_timestamp_seconds" % job: [({}, request.now)],
        "%s_last_run_success" % job: [({}, 1.0 if request.succeeded else 0.0)],
    }
    if last_success is not None:
        samples["%s_last_success_timestamp_seconds" % job] = [({}, last_success)]
    for key, value in sorted(request.values.items()):
        name, labels = _sample_name(key)
        taken = sorted(set(labels) & set(request.common_labels))
        if taken:
            raise PhoenixError("values key %r sets the label %s, which every sample gets from the %s option"
                               % (key, taken[0], taken[0]))
        samples.setdefault("phoenix_%s" % name, []).append((labels, _number(key, value)))
    lines = []
    for name, values in samples.items():
        lines.append("# TYPE %s gauge" % name)
        for labels, value in values:
            tagged = dict(labels, **request.common_labels)
            lines.append("%s{%s} %s" % (name, ",".join('%s="%s"' % item for item in sorted(tagged.items())),
                                        _format(value)))
    return "\n".join(lines) + "\n"


def write_atomically(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` in one rename, durable once this returns; readable by an exporter."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=".%s." % path.name, dir=path.parent)
    try:
        with os.fdopen(handle, "w") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    fsync_path(path.parent)


def read_samples(text: str | None) -> dict[str, float]:
    """The samples of a file this module wrote, by name, with their labels but ``stage`` in braces if any."""
    found = {}
    for name, labels, value in WRITTEN.findall(text or ""):
        kept = ",".join('%s="%s"' % kv for kv in LABEL.findall(labels) if kv[0] != "stage")
        found[name + ("{%s}" % kept if kept else "")] = float(value)
    return found


def last_run(directory: Path, stage: str, job: str) -> dict[str, Any] | None:
    """The last run of a job as its file tells it (``at``, ``succeeded``, ``last_success_at``, and the job's own
    ``duration_seconds`` if it reported one), or None when it never ran here."""
    path = path_of(directory, stage, job)
    samples = read_samples(path.read_text()) if path.is_file() else {}
    name = "phoenix_%s" % job
    if "%s_last_run_timestamp_seconds" % name not in samples:
        return None
    success_at = samples.get("%s_last_success_timestamp_seconds" % name)
    return {"at": _iso(samples["%s_last_run_timestamp_seconds" % name]),
            "succeeded": samples.get("%s_last_run_success" % name) == 1,
            "last_success_at": _iso(success_at) if success_at is not None else None,
            "duration_seconds": samples.get("%s_duration_seconds" % name)}


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _last_success(previous: str | None, job: str) -> float | None:
    return read_samples(previous).get("%s_last_success_timestamp_seconds" % job)


def _sample_name(key: str) -> tuple[str, dict[str, str]]:
    found = SAMPLE.match(key)
    if not found:
        raise PhoenixError('values key %r is not a metric name with optional labels, e.g. backup_size_bytes or '
                           'worlds{state="active"}' % key)
    return found.group(1), dict(LABEL.findall(found.group(2) or ""))


def _number(key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise PhoenixError("values[%r] must be a number, got %r" % (key, value))
    try:
        number = float(value)
    except ValueError:
        raise PhoenixError("values[%r] must be a number, got %r" % (key, value)) from None
    if not math.isfinite(number):
        raise PhoenixError("values[%r] must be a number, got %r" % (key, value))
    return number


def _format(value: float) -> str:
    return str(int(value)) if value.is_integer() and abs(value) < 2 ** 53 else repr(value)
