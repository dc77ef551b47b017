"""End to end: the playbooks against an embedded cluster of their own (PHOENIX_HOME, PHOENIX_PG_PORT)."""

from __future__ import annotations

import email
import email.policy
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from psycopg import sql

from ansible_collections.phoenix.platform.plugins.module_utils._pg.local_cluster import LocalCluster
from ansible_collections.phoenix.platform.tests.helpers import free_port, is_alive, kill_tree, repo_root

from conftest import Database, held_by
from worlds_fixtures import table_fingerprints

ALL = ["-i", "inventories/local", "-i", "inventories/beta", "-i", "inventories/prod"]
pytestmark = pytest.mark.slow


def playbook_command(name, *args):
    return [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "playbooks/" + name, *args]


def playbook(env, name, *args, extra_env=None):
    return subprocess.run(playbook_command(name, *args), cwd=repo_root(), env=dict(env, **(extra_env or {})),
                          capture_output=True, text=True, check=False)


def environment_database(env, name) -> Database:
    """The database of one environment in the embedded cluster of the playbooks."""
    return Database(LocalCluster(Path(env["PHOENIX_HOME"]) / "postgres", int(env["PHOENIX_PG_PORT"])), name)


def last_message(output: str) -> str:
    """The last debug message of a run, on one line (what an AWX job shows last)."""
    messages = re.findall(r"^    msg: (.*(?:\n        .*)*)|^    \"msg\": \"(.*)\"$", output, re.MULTILINE)
    messages = [yaml_form or json_form for yaml_form, json_form in messages]  # callback result format yaml or json
    text = messages[-1].replace("\n        ", " ").removeprefix("|-").removeprefix(">-")  # YAML block scalars
    return " ".join(text.strip().strip("'\"").split()) if messages else ""


def recap(output: str) -> dict[str, dict[str, int]]:
    rows = re.findall(r"^(\S+)\s+: (.*)$", output.split("PLAY RECAP")[-1], re.MULTILINE)
    return {host: {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", stats)} for host, stats in rows}


def test_site_then_status_then_idempotent_site(phoenix_home):
    first = playbook(phoenix_home, "site.yml", *ALL)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "NOTICE: BETA has no database URL" in first.stdout
    assert "NOTICE: PROD has no database URL" in first.stdout
    assert "NOTICE: LOCAL" not in first.stdout
    assert all(stats["failed"] == 0 for stats in recap(first.stdout).values())

    status = playbook(phoenix_home, "env_status.yml", *ALL)
    assert status.returncode == 0, status.stdout
    lines = re.findall(r"'((?:LOCAL|BETA|PROD): [^']*)'", status.stdout)
    assert lines == ["LOCAL: healthy (0 worlds, 0 artifacts)", "BETA: healthy (0 worlds, 0 artifacts)",
                     "PROD: healthy (0 worlds, 0 artifacts)"]

    second = playbook(phoenix_home, "site.yml", *ALL)
    assert second.returncode == 0
    assert {host: stats["changed"] for host, stats in recap(second.stdout).items()} == {
        "phoenix-local": 0, "phoenix-beta": 0, "phoenix-prod": 0}


def test_inventory_pointed_at_prod_database_fails_before_writing(phoenix_home):
    assert playbook(phoenix_home, "site.yml", "-i", "inventories/prod").returncode == 0
    prod_url = "postgresql://postgres@/phoenix_prod?host=%s/postgres/run&port=%s" % (
        phoenix_home["PHOENIX_HOME"], phoenix_home["PHOENIX_PG_PORT"])
    result = playbook(phoenix_home, "site.yml", "-i", "inventories/beta",
                      extra_env={"PHOENIX_BETA_DB_URL": prod_url})
    assert result.returncode != 0
    assert "registered as PROD but this run declares stage BETA" in result.stdout
    assert "NOTICE" not in result.stdout


def test_health_playbook_reports_a_stopped_database(phoenix_home):
    assert playbook(phoenix_home, "site.yml", "-i", "inventories/beta").returncode == 0
    healthy = playbook(phoenix_home, "health.yml", "-i", "inventories/beta", "-e", "detail=true")
    assert healthy.returncode == 0
    assert "metrics:" in healthy.stdout and "status: healthy" in healthy.stdout
    stop = playbook(phoenix_home, "embedded.yml", "-i", "inventories/local", "-e", "local_postgres_state=stopped")
    assert stop.returncode == 0, stop.stdout
    down = playbook(phoenix_home, "health.yml", "-i", "inventories/beta")
    assert down.returncode != 0
    assert "BETA is unhealthy: database:" in down.stdout
    assert "No such file or directory" in down.stdout or "Connection refused" in down.stdout
    assert playbook(phoenix_home, "embedded.yml", "-i", "inventories/local").returncode == 0


def test_health_watch_repeats(phoenix_home):
    assert playbook(phoenix_home, "site.yml", "-i", "inventories/local").returncode == 0
    result = playbook(phoenix_home, "health.yml", "-i", "inventories/local", "-e", "watch=true",
                      "-e", "health_rounds=2", "-e", "phoenix_health_interval=1")
    assert result.returncode == 0, result.stdout
    assert len(re.findall(r"LOCAL round \d at", result.stdout)) == 2
    assert re.match(r"LOCAL: healthy \(schema version \d+, \d+ worlds, newest backup ", last_message(result.stdout))


def test_seed_worlds_cleanup_export_import(phoenix_home, tmp_path):
    assert playbook(phoenix_home, "site.yml", *ALL).returncode == 0
    first = playbook(phoenix_home, "seed.yml", "-i", "inventories/local", "-i", "inventories/beta")
    assert first.returncode == 0, first.stdout
    assert "LOCAL: ENTERPRISE_ONBOARDING: 35 rows, GENERAL_001: 46 rows, UC_TESTING: 46 rows, UC_DEMO: 46 rows" \
        in first.stdout.replace("\n        ", " ")
    again = playbook(phoenix_home, "seed.yml", "-i", "inventories/local", "-i", "inventories/beta")
    assert {h: s["changed"] for h, s in recap(again.stdout).items()} == {"phoenix-local": 0, "phoenix-beta": 0}

    refused = playbook(phoenix_home, "seed.yml", "-i", "inventories/prod")
    assert refused.returncode != 0 and "never runs against PROD" in refused.stdout

    status = playbook(phoenix_home, "env_status.yml", *ALL)
    assert "LOCAL: healthy (4 worlds, 46 artifacts)" in status.stdout
    assert "BETA: healthy (2 worlds, 24 artifacts)" in status.stdout

    created = playbook(phoenix_home, "worlds.yml", "-i", "inventories/local", "-e", "operation=create",
                       "-e", "world=UC_NEW", "-e", "template=GENERAL_001")
    assert created.returncode == 0, created.stdout
    listing = playbook(phoenix_home, "worlds.yml", "-i", "inventories/local", "-e", "format=csv")
    assert "UC_NEW,UC_NEW," in listing.stdout
    dest = str(tmp_path / "uc_new")
    exported = playbook(phoenix_home, "worlds.yml", "-i", "inventories/local", "-e", "operation=export",
                        "-e", "world=UC_NEW", "-e", "dest=" + dest)
    assert exported.returncode == 0 and os.path.exists(os.path.join(dest, "seed.json"))
    preview = playbook(phoenix_home, "seed_import.yml", "-i", "inventories/beta", "-e", "src=" + dest, "--check")
    assert "UC_NEW in BETA: would insert 46 row(s), update 0, delete 0; 0 already there" in preview.stdout
    imported = playbook(phoenix_home, "seed_import.yml", "-i", "inventories/beta", "-e", "src=" + dest)
    assert imported.returncode == 0, imported.stdout
    assert "UC_NEW in BETA: 46 row(s) inserted, 0 updated, 0 deleted; 0 already there" in imported.stdout
    prod_import = playbook(phoenix_home, "seed_import.yml", "-i", "inventories/prod", "-e", "src=" + dest)
    assert prod_import.returncode != 0 and "allow_prod=true" in prod_import.stdout
    from_prod = playbook(phoenix_home, "seed_export.yml", "-i", "inventories/beta", "-e", "world=UC_NEW",
                         "-e", "dest=" + str(tmp_path / "from_beta"))
    assert from_prod.returncode == 0, from_prod.stdout
    deleted = playbook(phoenix_home, "worlds.yml", "-i", "inventories/local", "-e", "operation=delete",
                       "-e", "world=UC_NEW")
    assert deleted.returncode == 0 and recap(deleted.stdout)["phoenix-local"]["changed"] == 1
    planned = playbook(phoenix_home, "cleanup.yml", "-i", "inventories/local", "-e", "max_age_hours=0", "--check")
    assert "LOCAL: would remove 2 world(s), deactivate 0, delete 92 row(s)" in planned.stdout
    cleanup = playbook(phoenix_home, "cleanup.yml", *ALL, "-e", "max_age_hours=0")
    assert cleanup.returncode == 0, cleanup.stdout
    assert "LOCAL: removed 2 world(s), deactivated 0, deleted 92 row(s)" in cleanup.stdout  # UC_TESTING, UC_DEMO
    assert "PROD: world cleanup disabled" in cleanup.stdout
    cleaned = prometheus_samples(Path(phoenix_home["PHOENIX_HOME"]) / "metrics" / "phoenix_local_cleanup.prom")
    assert cleaned["phoenix_cleanup_removed_worlds"] == 2 and cleaned["phoenix_cleanup_deleted_rows"] == 92
    assert cleaned["phoenix_cleanup_last_run_success"] == 1


def test_users_playbook(phoenix_home):
    assert playbook(phoenix_home, "site.yml", "-i", "inventories/local").returncode == 0
    secret = "Sup3r-Secret-Pw"
    added = playbook(phoenix_home, "users.yml", "-i", "inventories/local", "-vvv", "-e", "action=add",
                     "-e", "email=Ann@Example.com", "-e", "name=Ann", "-e", "password=" + secret, "-e", "type=user")
    assert added.returncode == 0, added.stdout
    assert recap(added.stdout)["phoenix-local"]["changed"] == 1
    assert secret not in added.stdout + added.stderr and "$2b$" not in added.stdout + added.stderr

    promoted = playbook(phoenix_home, "users.yml", "-i", "inventories/local", "-e", "action=set-admin",
                        "-e", "email=ann@example.com")
    assert promoted.returncode == 0 and recap(promoted.stdout)["phoenix-local"]["changed"] == 1
    again = playbook(phoenix_home, "users.yml", "-i", "inventories/local", "-e", "action=set-admin",
                     "-e", "email=ann@example.com")
    assert again.returncode == 0 and recap(again.stdout)["phoenix-local"]["changed"] == 0
    unknown = playbook(phoenix_home, "users.yml", "-i", "inventories/local", "-e", "action=set-admin",
                       "-e", "email=nobody@example.com")
    assert unknown.returncode != 0 and "user nobody@example.com does not exist" in unknown.stdout

    url = "postgresql://postgres@/phoenix_local?host=%s/postgres/run&port=%s" % (
        phoenix_home["PHOENIX_HOME"], phoenix_home["PHOENIX_PG_PORT"])
    listed = playbook(phoenix_home, "users.yml", "-e", "db_url=" + url, "-e", "stage=LOCAL", "-e", "action=list")
    assert listed.returncode == 0, listed.stdout
    assert "Ann@Example.com  admin" in listed.stdout

    deleted = playbook(phoenix_home, "users.yml", "-i", "inventories/local", "-e", "action=delete",
                       "-e", "email=ANN@example.com")
    assert deleted.returncode == 0 and recap(deleted.stdout)["phoenix-local"]["changed"] == 1


BROKEN_RESTART = """
import sys, psycopg
from psycopg import sql
with psycopg.connect(sys.argv[1], autocommit=True) as conn:  # a release that damages data
    conn.execute(sql.SQL('DELETE FROM "Message_v2"'))
    conn.execute(sql.SQL('DROP TABLE "Suggestion"'))
    if sys.argv[2] == "unhealthy":  # it starts, but leaves the database unhealthy
        conn.execute(sql.SQL("DROP TABLE phoenix.migrations"))
        sys.exit(0)
sys.exit(3)  # or it dies
"""


def test_deploy_rolls_back_when_it_fails(phoenix_home, tmp_path):

    assert playbook(phoenix_home, "site.yml", "-i", "inventories/beta").returncode == 0
    assert playbook(phoenix_home, "seed.yml", "-i", "inventories/beta").returncode == 0
    beta = environment_database(phoenix_home, "phoenix_beta")
    url = beta.url

    def app_state():
        return {t: v for t, v in table_fingerprints(beta).items() if not t.startswith("phoenix.")}

    ok = playbook(phoenix_home, "deploy.yml", "-i", "inventories/beta")
    assert ok.returncode == 0, ok.stdout
    assert re.match(r"BETA: deployed; backup backup-BETA-\S+, \d+ migration\(s\) applied, no restart command, healthy$",
                    last_message(ok.stdout)), last_message(ok.stdout)
    env_file = os.path.join(phoenix_home["PHOENIX_HOME"], "app", "beta.env")
    assert oct(os.stat(env_file).st_mode & 0o777) == "0o600"
    assert "ENABLE_ADAPTIVE_QUIZ=false" in open(env_file).read()

    before = app_state()
    os.chmod(os.path.dirname(env_file), 0o750)  # the directory now belongs to its owner: deploy leaves its mode alone
    for failure, failed_task in (("dies", "The application is restarted"), ("unhealthy", "Health gate")):
        restart = json.dumps({"phoenix_restart_command": [sys.executable, "-c", BROKEN_RESTART, url, failure]})
        failed = playbook(phoenix_home, "deploy.yml", "-i", "inventories/beta", "-e", restart)
        assert failed.returncode != 0
        assert "deploy failed at '%s'" % failed_task in failed.stdout.replace("\n        ", " ")
        assert "The database was rolled back to backup-BETA-" in failed.stdout.replace("\n        ", " ")
        assert app_state() == before
        assert beta.query("SELECT operation FROM phoenix.audit_log ORDER BY id DESC LIMIT 2") == [
            ("deploy.rolled_back",), ("backup.restore",)]
        assert beta.query("SELECT count(*) FROM phoenix.migrations")[0][0] >= 5
    assert oct(os.stat(os.path.dirname(env_file)).st_mode & 0o777) == "0o750"

    env_before = open(env_file).read()
    hostile = {"USE_CHAT_COMPLETION": "true\nDATABASE_URL=postgresql://evil", "TYPO": 1, "LOG_LEVEL": "info\r"}
    bad_settings = playbook(phoenix_home, "deploy.yml", "-i", "inventories/beta",
                            "-e", json.dumps({"phoenix_app_settings": hostile}))
    assert bad_settings.returncode != 0
    assert "unknown TYPO; missing ENABLE_ADAPTIVE_QUIZ, ENABLE_PATTERN_ANALYSIS, ENABLE_STYLE_SETTINGS; line breaks " \
        "(which would add lines to the env file) in LOG_LEVEL, USE_CHAT_COMPLETION" in \
        " ".join(bad_settings.stdout.split())
    assert open(env_file).read() == env_before


def test_transfer_and_world_copy_playbooks(phoenix_home):
    both = ["-i", "inventories/local", "-i", "inventories/beta"]
    assert playbook(phoenix_home, "site.yml", *both).returncode == 0
    assert playbook(phoenix_home, "seed.yml", *both).returncode == 0
    preview = playbook(phoenix_home, "transfer.yml", *both, "-e", "source=local", "-e", "target=beta",
                       "-e", '{"worlds": ["UC_DEMO"]}', "--check")
    assert preview.returncode == 0, preview.stdout
    assert "Artifact: would insert 12, update 0, unchanged 0, delete 0" in preview.stdout
    assert last_message(preview.stdout).startswith("BETA from LOCAL: would insert ")
    done = playbook(phoenix_home, "transfer.yml", *both, "-e", "source=local", "-e", "target=beta",
                    "-e", '{"worlds": ["UC_DEMO"]}')
    assert "Artifact: insert 12, update 0, unchanged 0, delete 0" in done.stdout
    transferred = prometheus_samples(Path(phoenix_home["PHOENIX_HOME"]) / "metrics" / "phoenix_beta_transfer.prom")
    assert transferred["phoenix_transfer_rows,action=insert"] >= 12 and transferred["phoenix_transfer_duration_seconds"] > 0
    again = playbook(phoenix_home, "transfer.yml", *both, "-e", "source=local", "-e", "target=beta",
                     "-e", '{"worlds": ["UC_DEMO"]}')
    assert "Artifact: insert 0, update 0, unchanged 12, delete 0" in again.stdout
    assert recap(again.stdout)["phoenix-beta"]["changed"] == 0
    copied = playbook(phoenix_home, "world_copy.yml", *both, "-e", "world=UC_TESTING", "-e", "from=local",
                      "-e", "to=beta")
    assert copied.returncode == 0, copied.stdout
    # BETA has its own UC_TESTING_BETA (seed.yml clones it from BETA's template, other keys, same emails):
    # the copy mirrors the source world, replacing those rows and updating the world's metadata.
    assert "UC_TESTING -> UC_TESTING_BETA in BETA: 46 inserted, 1 updated, 46 deleted" in \
        copied.stdout.replace("\n        ", " ")
    into_prod = playbook(phoenix_home, "transfer.yml", *ALL, "-e", "source=beta", "-e", "target=prod",
                         "-e", '{"worlds": ["UC_DEMO"]}')
    assert into_prod.returncode != 0 and "allow_prod=true" in into_prod.stdout, into_prod.stdout[-3000:]


def test_phoenix_lock_timeout_bounds_every_module_the_playbooks_run(phoenix_home):
    """The message of a run behind someone's lock says to raise lock_timeout: the playbooks take it as
    phoenix_lock_timeout, through their module defaults (worlds.yml) or a role's own task (the transfer)."""
    both = ["-i", "inventories/local", "-i", "inventories/beta"]
    assert playbook(phoenix_home, "site.yml", *both).returncode == 0
    beta = environment_database(phoenix_home, "phoenix_beta")
    migration = sql.SQL('LOCK TABLE "WorldMeta" IN ACCESS EXCLUSIVE MODE')
    runs = {"worlds": ["worlds.yml", "-i", "inventories/beta", "-e", "operation=list"],
            "transfer": ["transfer.yml", *both, "-e", "source=local", "-e", "target=beta"]}
    for name, arguments in runs.items():
        with held_by(beta, migration, "drizzle migrate", released_after=30):
            started = time.monotonic()
            held = playbook(phoenix_home, *arguments, "-e", "phoenix_lock_timeout=1")
            took = time.monotonic() - started
        assert held.returncode != 0, held.stdout
        assert re.search(r'lock_timeout=1 s for a lock on a table in \S+/phoenix_beta and gave up; .* Held now by: '
                         r'public\."WorldMeta" by session \d+ of \w+ \(drizzle migrate\)',
                         " ".join(held.stdout.replace("\n        ", " ").split())), (
            name, held.stdout.partition("fatal:")[2][:1500] or held.stdout[-1500:])  # short enough to be shown whole
        assert took < 30, (name, took)  # not released first: it gave up
        assert playbook(phoenix_home, *arguments).returncode == 0, name  # without it: each module's own default


@pytest.mark.slow
def test_transfer_playbooks_refuse_a_missing_or_misspelled_environment(phoenix_home):
    both = ["-i", "inventories/local", "-i", "inventories/beta"]
    typo = playbook(phoenix_home, "transfer.yml", *both, "-e", "source=local", "-e", "target=btea",
                    "-e", '{"worlds": ["UC_DEMO"]}')
    assert typo.returncode != 0 and "target 'btea' must be two different environments" in typo.stdout
    absent = playbook(phoenix_home, "world_copy.yml", "-i", "inventories/local", "-e", "world=UC_DEMO",
                      "-e", "from=local", "-e", "to=beta")
    assert absent.returncode != 0 and "Both environments are in the inventories" in absent.stdout
    missing = playbook(phoenix_home, "transfer.yml", *both, "-e", "source=local")
    assert missing.returncode != 0 and "target ''" in missing.stdout


def wait_for(condition, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting for " + what
        time.sleep(0.05)


def kill_while_blocked(env, database, lock: str, name: str, *args) -> None:
    """Run a playbook until its writing session waits on a lock this test holds (so it has written part of its
    transaction), then SIGKILL the playbook and every process below it, and wait for the server to notice."""
    waiting = ("SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' "
               "AND application_name LIKE %s")
    with database.connect() as blocker:
        blocker.autocommit = False
        blocker.execute(sql.SQL(lock))
        process = subprocess.Popen(playbook_command(name, *args), cwd=repo_root(), env=env, start_new_session=True,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: database.query(waiting, ("phoenix.platform.%",)) or process.poll() is not None,
                 name + " to block")  # the module's sessions, pg_restore's too
        assert process.poll() is None, name + " ended before it reached the lock"
        killed = kill_tree(process.pid)
        process.wait()
        blocker.rollback()
    assert len(set(killed.values())) > 1  # the module ran in a session of its own: a process-group kill misses it
    wait_for(lambda: not any(is_alive(pid) for pid in killed), "every killed process to be gone", timeout=10)
    wait_for(lambda: not database.query("SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                                        "AND pid <> pg_backend_pid() AND backend_type = 'client backend'"),
             "the killed sessions to end")


@pytest.mark.slow
def test_killed_playbooks_leave_the_old_state_and_a_rerun_the_new(phoenix_home, tmp_path):
    both = ["-i", "inventories/local", "-i", "inventories/beta"]
    assert playbook(phoenix_home, "site.yml", *both).returncode == 0
    assert playbook(phoenix_home, "seed.yml", "-i", "inventories/local").returncode == 0  # UC_DEMO, the source
    beta = environment_database(phoenix_home, "phoenix_beta")

    def app_state():
        return {t: v for t, v in table_fingerprints(beta).items() if not t.startswith("phoenix.")}

    def world_rows(world):
        return beta.query('SELECT count(*) FROM "Artifact" WHERE world_id = %s', (world,))[0][0]

    # a transfer, killed while inserting chat messages after the users and artifacts
    transfer = ["transfer.yml", *both, "-e", "source=local", "-e", "target=beta", "-e", '{"worlds": ["UC_DEMO"]}',
                "-e", "suffix=_CRASH"]
    before = app_state()
    kill_while_blocked(phoenix_home, beta, 'LOCK TABLE "Message_v2" IN SHARE MODE', *transfer)
    assert app_state() == before
    rerun = playbook(phoenix_home, *transfer)
    assert rerun.returncode == 0 and world_rows("UC_DEMO_CRASH") == 12, rerun.stdout[-2000:]

    # a seed import, killed the same way
    exported = playbook(phoenix_home, "seed_export.yml", "-i", "inventories/local", "-e", "world=UC_DEMO",
                        "-e", "dest=" + str(tmp_path / "demo"))
    assert exported.returncode == 0, exported.stdout[-2000:]
    seed_import = ["seed_import.yml", "-i", "inventories/beta", "-e", "src=" + str(tmp_path / "demo"),
                   "-e", "world=UC_SEEDED"]
    before = app_state()
    kill_while_blocked(phoenix_home, beta, 'LOCK TABLE "Message_v2" IN SHARE MODE', *seed_import)
    assert app_state() == before
    rerun = playbook(phoenix_home, *seed_import)
    assert rerun.returncode == 0 and world_rows("UC_SEEDED") == 12, rerun.stdout[-2000:]

    # a restore, killed while pg_restore (a grandchild of the module) waits to drop a table
    assert playbook(phoenix_home, "backup.yml", "-i", "inventories/beta").returncode == 0
    backed_up = app_state()
    assert playbook(phoenix_home, "worlds.yml", "-i", "inventories/beta", "-e", "operation=delete",
                    "-e", "world=UC_SEEDED").returncode == 0
    before = app_state()
    assert before != backed_up
    kill_while_blocked(phoenix_home, beta, 'LOCK TABLE "Artifact" IN ACCESS SHARE MODE',
                       "restore.yml", "-i", "inventories/beta")
    assert app_state() == before
    rerun = playbook(phoenix_home, "restore.yml", "-i", "inventories/beta")  # latest: never the safety backup
    assert rerun.returncode == 0 and app_state() == backed_up, rerun.stdout[-2000:]

    # the same restore in parallel into a new database that replaces the old one
    assert playbook(phoenix_home, "worlds.yml", "-i", "inventories/beta", "-e", "operation=delete",
                    "-e", "world=UC_SEEDED").returncode == 0
    swapped = playbook(phoenix_home, "restore.yml", "-i", "inventories/beta", "-e", "mode=swap")
    assert swapped.returncode == 0 and app_state() == backed_up, swapped.stdout[-2000:]
    assert re.search(r"the old database is kept as phoenix_beta_pre_restore_\d{14}$", last_message(swapped.stdout))
    assert beta.query("SELECT stage FROM phoenix.environment") == [("BETA",)]


def own_inventory(path: Path, **host_vars) -> str:
    """An inventory as a team writes it: its own group and host names, only the variables it must set."""
    host = dict(ansible_connection="local", ansible_python_interpreter=sys.executable, **host_vars)
    path.write_text(json.dumps({"databases": {"hosts": {"staging-db-01": host}}}))
    return str(path)


def test_an_inventory_of_ones_own_with_a_database_url_is_used_as_is(phoenix_home, database, tmp_path):
    inventory = own_inventory(tmp_path / "staging.json", phoenix_stage="BETA", phoenix_db_url=database.url)
    other_group = playbook(phoenix_home, "health.yml", "-i", inventory)  # group "databases", not "phoenix"
    assert other_group.returncode != 0 and "Could not match supplied host pattern, ignoring: phoenix" in other_group.stderr
    mine = ["-i", inventory, "-e", "phoenix_hosts=databases"]
    site = playbook(phoenix_home, "site.yml", *mine)
    assert site.returncode == 0, site.stdout
    assert "BETA: schema version" in site.stdout and "NOTICE" not in site.stdout
    assert database.query("SELECT stage FROM phoenix.environment") == [("BETA",)]
    backup = playbook(phoenix_home, "backup.yml", *mine)
    assert backup.returncode == 0, backup.stdout
    elsewhere = subprocess.run(  # from another directory, without this checkout's ansible.cfg
        [playbook_command("health.yml")[0], os.path.join(repo_root(), "playbooks", "health.yml"), *mine],
        cwd=tmp_path, env={k: v for k, v in phoenix_home.items() if k != "ANSIBLE_CONFIG"},
        capture_output=True, text=True, check=False)
    assert elsewhere.returncode == 0, elsewhere.stdout + elsewhere.stderr
    assert last_message(elsewhere.stdout).startswith("BETA: healthy")
    assert (Path(phoenix_home["PHOENIX_HOME"]) / "backups" / "BETA").is_dir()  # the role's default backup_dir

    typo_inventory = own_inventory(tmp_path / "typo.json", phoenix_stage="BTEA", phoenix_db_url=database.url)
    typo = playbook(phoenix_home, "health.yml", "-i", typo_inventory, "-e", "phoenix_hosts=databases")
    assert typo.returncode != 0
    assert "value of phoenix_stage must be one of: LOCAL, BETA, PROD, got: BTEA" in typo.stdout
    assert database.url not in typo.stdout
    unstaged = playbook(phoenix_home, "health.yml", "-i", own_inventory(tmp_path / "none.json", phoenix_db_url=database.url),
                        "-e", "phoenix_hosts=databases")
    assert unstaged.returncode != 0 and "missing required arguments: phoenix_stage" in unstaged.stdout


def test_state_is_never_written_inside_a_collection(phoenix_home, tmp_path):
    installed = tmp_path / "ansible_collections" / "phoenix" / "platform"
    installed.mkdir(parents=True)
    (installed / "MANIFEST.json").write_text("{}")
    inside = playbook(phoenix_home, "backup.yml", "-i", "inventories/local",
                      extra_env={"PHOENIX_HOME": str(installed / ".phoenix")})
    assert inside.returncode != 0
    assert "lies inside a collection directory, which `ansible-galaxy collection install --force` replaces" in \
        " ".join(inside.stdout.split())
    assert not (installed / ".phoenix").exists()


def test_users_playbook_takes_names_ansible_does_not_reserve(phoenix_home):
    assert playbook(phoenix_home, "site.yml", "-i", "inventories/local").returncode == 0
    added = playbook(phoenix_home, "users.yml", "-i", "inventories/local", "-e", "operation=add",
                     "-e", "email=bea@example.com", "-e", "full_name=Bea", "-e", "role=admin")
    assert added.returncode == 0, added.stdout
    assert "reserved name" not in added.stdout + added.stderr and "no_log" not in added.stdout + added.stderr
    assert last_message(added.stdout) == "LOCAL: add bea@example.com done"
    local = environment_database(phoenix_home, "phoenix_local")
    assert local.query('SELECT name, type FROM "User" WHERE email = %s', ("bea@example.com",)) == [("Bea", "admin")]
    typo = playbook(phoenix_home, "users.yml", "-i", "inventories/local", "-e", "operation=promote")
    assert typo.returncode != 0
    assert "value of users_operation must be one of: list, add, delete, set-admin, got: promote" in typo.stdout


def test_site_runs_the_applications_migrator_then_adopts_its_world_meta(phoenix_home, database, tmp_path):
    migrator = [sys.executable, os.path.join(repo_root(), "tests", "fixtures", "welcomecraft", "migrate.py")]
    inventory = own_inventory(tmp_path / "welcomecraft.json", phoenix_stage="BETA", phoenix_db_url=database.url,
                              phoenix_app_schema="none", phoenix_app_migrate_command=migrator)
    site = playbook(phoenix_home, "site.yml", "-i", inventory, "-e", "phoenix_hosts=databases")
    assert site.returncode == 0, site.stdout
    assert "applied 13 migration(s)" in site.stdout
    assert last_message(site.stdout) == "BETA: schema version 9 (5 migration(s) applied, WorldMeta of the application adopted), healthy"
    assert database.query('SELECT count(*) FROM drizzle."__drizzle_migrations"') == [(13,)]
    assert database.query("SELECT name FROM phoenix.migrations ORDER BY version") == [
        ("phoenix_core",), ("world_meta_adopted",), ("key_map",), ("key_map_batches",), ("key_map_batch_key",)]
    again = playbook(phoenix_home, "site.yml", "-i", inventory, "-e", "phoenix_hosts=databases")
    assert again.returncode == 0 and recap(again.stdout)["staging-db-01"]["changed"] == 0, again.stdout
    assert "DATABASE_URL" not in site.stdout + again.stdout  # the migrator's environment is not logged


def prometheus_samples(path: Path) -> dict[str, float]:
    from prometheus_client.parser import text_string_to_metric_families

    return {s.name + "".join(",%s=%s" % kv for kv in sorted(s.labels.items()) if kv[0] != "stage"): s.value
            for family in text_string_to_metric_families(path.read_text()) for s in family.samples}


def test_scheduled_playbooks_write_metrics_and_a_failed_run_keeps_the_last_success(phoenix_home, tmp_path):
    metrics = ["-e", "phoenix_metrics_dir=%s" % tmp_path]
    assert playbook(phoenix_home, "site.yml", "-i", "inventories/beta").returncode == 0
    backup = playbook(phoenix_home, "backup.yml", "-i", "inventories/beta", *metrics)
    assert backup.returncode == 0, backup.stdout
    backed_up = prometheus_samples(tmp_path / "phoenix_beta_backup.prom")
    assert backed_up["phoenix_backup_last_run_success"] == 1 and backed_up["phoenix_backup_size_bytes"] > 0
    succeeded_at = backed_up["phoenix_backup_last_success_timestamp_seconds"]

    drill = playbook(phoenix_home, "restore_drill.yml", "-i", "inventories/beta", *metrics)
    assert drill.returncode == 0, drill.stdout
    assert re.match(r"BETA: drill passed for backup-BETA-\S+ \([\d.]+ h old\) in [\d.]+ s, every table as in its "
                    r"manifest", last_message(drill.stdout)), last_message(drill.stdout)
    drilled = prometheus_samples(tmp_path / "phoenix_beta_restore_drill.prom")
    assert drilled["phoenix_restore_drill_last_run_success"] == 1
    assert "phoenix_restore_drill_last_success_timestamp_seconds" in drilled

    health = playbook(phoenix_home, "health.yml", "-i", "inventories/beta", *metrics)
    assert health.returncode == 0, health.stdout
    checked = prometheus_samples(tmp_path / "phoenix_beta_health.prom")
    assert checked["phoenix_health_status"] == 0 and checked["phoenix_worlds,state=total"] >= 0

    unwritable = tmp_path / "not-a-directory"
    unwritable.write_text("a file where the backups should go")
    failed = playbook(phoenix_home, "backup.yml", "-i", "inventories/beta", *metrics,
                      "-e", "phoenix_backup_dir=%s" % unwritable)
    assert failed.returncode != 0
    assert "BETA: the backup failed:" in failed.stdout
    after = prometheus_samples(tmp_path / "phoenix_beta_backup.prom")
    assert after["phoenix_backup_last_run_success"] == 0
    assert after["phoenix_backup_last_success_timestamp_seconds"] == succeeded_at
    assert after["phoenix_backup_last_run_timestamp_seconds"] > succeeded_at


def test_maintenance_playbook_checks_then_runs_and_guards_prod(phoenix_home, tmp_path):
    metrics = ["-e", "phoenix_metrics_dir=%s" % tmp_path]
    assert playbook(phoenix_home, "site.yml", "-i", "inventories/beta", "-i", "inventories/prod").returncode == 0
    checked = playbook(phoenix_home, "maintenance.yml", "-i", "inventories/beta", "--check", *metrics)
    assert checked.returncode == 0, checked.stdout
    assert re.match(r"BETA: would vacuum \d+ table\(s\), reindexed 0, left 0 held by others for the next run, "
                    r"found 0 idle transaction\(s\)",
                    last_message(checked.stdout)), last_message(checked.stdout)
    assert not (tmp_path / "phoenix_beta_maintenance.prom").exists()
    done = playbook(phoenix_home, "maintenance.yml", "-i", "inventories/beta", "-e", '{"reindex": ["Artifact"]}',
                    *metrics)
    assert done.returncode == 0, done.stdout
    assert re.match(r"BETA: vacuumed \d+ table\(s\), reindexed 1, left 0 held by others for the next run, "
                    r"terminated 0 idle", last_message(done.stdout)), last_message(done.stdout)
    samples = prometheus_samples(tmp_path / "phoenix_beta_maintenance.prom")
    assert samples["phoenix_maintenance_last_run_success"] == 1
    assert samples["phoenix_maintenance_skipped_tables"] == 0
    guarded = playbook(phoenix_home, "maintenance.yml", "-i", "inventories/prod", *metrics)
    assert guarded.returncode != 0 and "allow_prod=true" in guarded.stdout
    assert prometheus_samples(tmp_path / "phoenix_prod_maintenance.prom")["phoenix_maintenance_last_run_success"] == 0
    report = playbook(phoenix_home, "maintenance.yml", "-i", "inventories/prod", "-e", "report_only=true", *metrics)
    assert report.returncode == 0, report.stdout


@pytest.fixture
def smtp_server():
    """A real SMTP server on loopback that keeps what it receives."""
    from aiosmtpd.controller import Controller

    class Inbox:
        def __init__(self):
            self.messages = []

        async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's hook name)
            self.messages.append((envelope.rcpt_tos, envelope.content.decode()))
            return "250 Message accepted for delivery"

    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield controller.port, inbox.messages
    controller.stop()


def test_a_failing_scheduled_backup_sends_one_alert_without_secrets_and_a_healthy_run_none(
        phoenix_home, tmp_path, smtp_server):
    port, received = smtp_server
    secret = "Sup3r-Secret-pw"
    db = environment_database(phoenix_home, "phoenix_beta")
    alerts = ["-e", "phoenix_alerts_enabled=true", "-e", '{"phoenix_alerts_email": "ops@example.com, dba@example.com"}',
              "-e", "phoenix_smtp_host=127.0.0.1", "-e", "phoenix_smtp_port=%d" % port,
              "-e", "phoenix_metrics_dir=%s" % tmp_path,
              # trust authentication ignores the password; the alert must not carry it
              "-e", "phoenix_db_url=postgresql://postgres:%s@/phoenix_beta?host=%s&port=%d"
              % (secret, db.cluster.socket_dir, db.cluster.port)]
    assert playbook(phoenix_home, "site.yml", "-i", "inventories/beta").returncode == 0
    healthy = playbook(phoenix_home, "backup.yml", "-i", "inventories/beta", *alerts)
    assert healthy.returncode == 0, healthy.stdout
    assert received == []
    unwritable = tmp_path / "not-a-directory"
    unwritable.write_text("a file where the backups should go")
    failed = playbook(phoenix_home, "backup.yml", "-i", "inventories/beta", *alerts,
                      "-e", "phoenix_backup_dir=%s" % unwritable)
    assert failed.returncode != 0
    assert len(received) == 1, received
    recipients, raw = received[0]
    mail = email.message_from_string(raw, policy=email.policy.default)
    text = mail.get_content().replace("\r\n", "\n")
    assert recipients == ["ops@example.com", "dba@example.com"]
    assert mail["Subject"] == "[Phoenix BETA] backup failed"
    assert "The backup job failed.\nEnvironment: BETA (inventory host phoenix-beta)" in text, text
    assert "cannot use %s/BETA: Not a directory" % unwritable in text, text
    assert secret not in raw and secret not in text and secret not in failed.stdout
