#!/usr/bin/python
# Copyright: Phoenix Platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: phoenix_metrics
short_description: Write a scheduled job's metrics as a Prometheus text file
version_added: 0.1.0
description:
  - Writes C(<dir>/phoenix_<stage>_<job>.prom) for a node exporter's textfile collector, as a temporary file
    renamed over the old one, so a reader never sees half a file.
  - Every run sets C(phoenix_<job>_last_run_timestamp_seconds) and C(phoenix_<job>_last_run_success) (1 or 0).
    C(phoenix_<job>_last_success_timestamp_seconds) moves only when O(succeeded) is true; a failed run carries the
    previous value over, so an alert on its age keeps firing while runs keep failing.
  - Every sample carries the label C(stage). Reads and writes no database.
  - The file holds the run's time, so every run that writes it reports a change.
options:
  dir:
    description: Directory of the metrics files (created if missing). Falls back to E(PHOENIX_METRICS_DIR).
    type: path
    required: true
  stage:
    description: The stage the job ran in. Falls back to E(APP_STAGE).
    type: str
    required: true
    choices: [LOCAL, BETA, PROD]
  job:
    description: The job, part of the file and metric names (lower case letters, digits and C(_)), e.g. V(backup).
    type: str
    required: true
  succeeded:
    description: Whether the job succeeded.
    type: bool
    required: true
  values:
    description:
      - More gauges of this run, name (without the C(phoenix_) prefix, optionally with labels in Prometheus syntax)
        -> number, e.g. C(backup_size_bytes) or C(worlds{state="active"}).
    type: dict
    default: {}
  server:
    description:
      - Which of the stage's servers the job ran against, when the stage has several (a standby beside the primary,
        say), so that their files and samples stay apart. It joins the file name (C(phoenix_<stage>_<server>_<job>.prom))
        and every sample gets a C(server) label. Lower case letters, digits and C(_), e.g. V(standby).
      - Unset, the file is C(phoenix_<stage>_<job>.prom) and the samples have no C(server) label.
    type: str
attributes:
  check_mode:
    description: Can run in check_mode.
    support: full
    details: Renders the file and writes nothing.
  diff_mode:
    description: Will return details on what has changed.
    support: full
    details: The file's text before and after.
author:
  - Phoenix Platform maintainers (@phoenix-platform)
"""

EXAMPLES = r"""
- name: Metrics of the backup run
  phoenix.platform.phoenix_metrics:
    dir: /var/lib/node_exporter/textfile
    stage: PROD
    job: backup
    succeeded: true
    values:
      backup_duration_seconds: "{{ backup.backup.duration_seconds }}"
      backup_size_bytes: "{{ backup.backup.size }}"
"""

RETURN = r"""
path:
  description: The metrics file.
  returned: success
  type: str
  sample: /var/lib/node_exporter/textfile/phoenix_prod_backup.prom
"""

import time
from pathlib import Path

from ansible.module_utils.basic import AnsibleModule, env_fallback

from ansible_collections.phoenix.platform.plugins.module_utils._core.argspec import STAGE_OPTIONS
from ansible_collections.phoenix.platform.plugins.module_utils._core.errors import PhoenixError
from ansible_collections.phoenix.platform.plugins.module_utils._metrics.textfile import (
    MetricsRequest,
    path_of,
    render,
    write_atomically,
)


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "dir": {"type": "path", "required": True, "fallback": (env_fallback, ["PHOENIX_METRICS_DIR"])},
            "stage": STAGE_OPTIONS["stage"],
            "job": {"type": "str", "required": True},
            "succeeded": {"type": "bool", "required": True},
            "values": {"type": "dict", "default": {}},
            "server": {"type": "str"},
        },
        supports_check_mode=True,
    )
    params = module.params
    request = MetricsRequest(Path(params["dir"]), params["stage"], params["job"], params["succeeded"],
                             params["values"], time.time(), params["server"])
    try:
        path = path_of(request.directory, request.stage, request.job, request.server)
        previous = path.read_text() if path.is_file() else None
        text = render(request, previous)
        if not module.check_mode:
            write_atomically(path, text)
    except PhoenixError as exc:
        module.fail_json(msg=exc.msg)
    except OSError as exc:
        module.fail_json(msg="cannot write the metrics file under %s: %s" % (params["dir"], exc.strerror or exc))
    module.exit_json(changed=True, path=str(path), diff={"before": previous or "", "after": text})


if __name__ == "__main__":
    main()
