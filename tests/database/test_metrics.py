"""phoenix_metrics: Prometheus text files, parsed as Prometheus parses them, replaced whole."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from ansible_collections.phoenix.platform.plugins.modules import phoenix_metrics
from ansible_collections.phoenix.platform.tests.helpers import run_module


def metrics(tmp_path, check=False, diff=False, **options):
    return run_module(phoenix_metrics.main, dict({"dir": str(tmp_path), "stage": "PROD", "job": "backup"}, **options),
                      check=check, diff=diff)


def samples(path) -> dict[tuple[str, tuple], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(path.read_text()) for s in family.samples}


def test_a_success_then_a_failure_keeps_the_last_success_time(tmp_path):
    checked = metrics(tmp_path, check=True, succeeded=True)
    assert checked["changed"] and not (tmp_path / "phoenix_prod_backup.prom").exists()
    first = metrics(tmp_path, succeeded=True, values={"backup_size_bytes": 1048576, "backup_duration_seconds": "2.5",
                                                      'worlds{state="active"}': 3, 'worlds{state="expired"}': 1})
    path = tmp_path / "phoenix_prod_backup.prom"
    assert first["changed"] and first["path"] == str(path)
    stage = (("stage", "PROD"),)
    read = samples(path)
    assert read[("phoenix_backup_last_run_success", stage)] == 1
    assert read[("phoenix_backup_size_bytes", stage)] == 1048576
    assert read[("phoenix_backup_duration_seconds", stage)] == 2.5
    assert read[("phoenix_worlds", (("stage", "PROD"), ("state", "active")))] == 3
    succeeded_at = read[("phoenix_backup_last_success_timestamp_seconds", stage)]
    assert succeeded_at == read[("phoenix_backup_last_run_timestamp_seconds", stage)]
    inode = path.stat().st_ino

    failed = metrics(tmp_path, diff=True, succeeded=False, values={"backup_duration_seconds": 0.4})
    read = samples(path)
    assert read[("phoenix_backup_last_run_success", stage)] == 0
    assert read[("phoenix_backup_last_success_timestamp_seconds", stage)] == succeeded_at
    assert read[("phoenix_backup_last_run_timestamp_seconds", stage)] > succeeded_at
    assert "phoenix_backup_last_run_success{stage=\"PROD\"} 1" in failed["diff"]["before"]
    assert "phoenix_backup_last_run_success{stage=\"PROD\"} 0" in failed["diff"]["after"]
    assert path.stat().st_ino != inode  # replaced by a rename, not rewritten in place
    assert sorted(p.name for p in tmp_path.iterdir()) == ["phoenix_prod_backup.prom"]  # no temporary file left


def test_a_failure_before_any_success_has_no_success_time(tmp_path):
    metrics(tmp_path, succeeded=False)
    read = samples(tmp_path / "phoenix_prod_backup.prom")
    assert ("phoenix_backup_last_run_success", (("stage", "PROD"),)) in read
    assert not any(name.endswith("last_success_timestamp_seconds") for name, _labels in read)


@pytest.mark.parametrize("options, message", [
    ({"job": "Backup-Run"}, "job 'Backup-Run' is not a metric name part"),
    ({"values": {"size bytes": 1}}, "values key 'size bytes' is not a metric name"),
    ({"values": {'worlds{stage="BETA"}': 1}}, "sets the label stage"),
    ({"values": {"backup_size_bytes": "large"}}, "values['backup_size_bytes'] must be a number, got 'large'"),
    ({"values": {'worlds{state="a\\"} 1\\nphoenix_fake 9"}': 1}}, "is not a metric name"),
])
def test_bad_names_and_values_are_named_and_nothing_is_written(tmp_path, options, message):
    refused = metrics(tmp_path, succeeded=True, **options)
    assert refused["failed"] and message in refused["msg"], refused
    assert list(tmp_path.iterdir()) == []


def test_a_stages_servers_keep_files_and_samples_apart(tmp_path):
    primary = metrics(tmp_path, job="health", succeeded=True, values={"health_status": 0})
    standby = metrics(tmp_path, job="health", server="standby", succeeded=True, values={"health_status": 1})
    assert primary["path"] == str(tmp_path / "phoenix_prod_health.prom")
    assert standby["path"] == str(tmp_path / "phoenix_prod_standby_health.prom")
    assert samples(tmp_path / "phoenix_prod_health.prom")[("phoenix_health_status", (("stage", "PROD"),))] == 0
    assert samples(tmp_path / "phoenix_prod_standby_health.prom")[
        ("phoenix_health_status", (("server", "standby"), ("stage", "PROD")))] == 1


@pytest.mark.parametrize("server, values, message", [
    ("Standby-1", {}, "server 'Standby-1' is not a file and label name part"),
    ("../../etc", {}, "server '../../etc' is not a file and label name part"),
    ("standby", {'worlds{server="primary"}': 1}, "sets the label server, which every sample gets from the server "
                                                 "option"),
])
def test_a_bad_server_is_named_and_nothing_is_written(tmp_path, server, values, message):
    refused = metrics(tmp_path, succeeded=True, server=server, values=values)
    assert refused["failed"] and message in refused["msg"], refused
    assert list(tmp_path.iterdir()) == []
