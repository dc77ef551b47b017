# Phoenix Platform — the two commands a newcomer needs are `make demo` and `make test`.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: demo test venv test-tools pytest lint sanity units molecule bench clean stop

venv: $(VENV)/.installed

# uv fetches and installs the packages in parallel (seconds, where pip takes a minute or more); pip is the fallback
# should uv itself not install or not reach the registry. pip notes each of the machine's find-links folders that is
# missing: QUIET_PIP leaves those notes out. Both compile the packages' bytecode as they install them (pip does by
# default): each ansible-playbook, and each module it runs, starts a Python that would otherwise compile ansible,
# jinja2, yaml and psycopg again wherever PYTHONDONTWRITEBYTECODE is set.
UV := uv==0.13.9
QUIET_PIP := 2>&1 | { grep -v 'is ignored' || true; }
$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	{ $(BIN)/pip install --quiet $(UV) $(QUIET_PIP) && $(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python \
	  -r requirements-dev.txt; } || $(BIN)/pip install --quiet -r requirements-dev.txt $(QUIET_PIP)
	$(BIN)/python -c 'import ansible, psycopg, pydantic, bcrypt, molecule, pytest, pgserver'
	touch $@

# The demo keeps its state in the checkout; playbooks otherwise default to ~/.local/share/phoenix.
demo stop: export PHOENIX_HOME ?= $(CURDIR)/.phoenix

# make demo APP=welcomecraft: the same on databases shaped like the original WelcomeCraft application.
APP ?= reference
DEMO_VARS := $(if $(filter welcomecraft,$(APP)),-e @tests/fixtures/welcomecraft/demo.yml,)

demo: venv
	$(BIN)/ansible-playbook playbooks/site.yml -i inventories/local -i inventories/beta -i inventories/prod $(DEMO_VARS)
	$(BIN)/ansible-playbook playbooks/seed.yml -i inventories/local -i inventories/beta $(DEMO_VARS)
	$(BIN)/ansible-playbook playbooks/env_status.yml -i inventories/local -i inventories/beta -i inventories/prod $(DEMO_VARS)

stop: venv
	$(BIN)/ansible-playbook playbooks/embedded.yml -i inventories/local -e local_postgres_state=stopped

# Quick gates first, three jobs at a time (each one's output shown whole once it ends), the first of them the
# installation of the tools the tests need, when they are missing (mostly waiting on the registry); pytest last so
# its summary closes the run.
test: venv
	$(MAKE) --no-print-directory -j3 --output-sync=target test-tools lint sanity units molecule
	$(MAKE) --no-print-directory pytest

# The whole suite on the system's PostgreSQL, then the restore tests whose rules change with PostgreSQL 16 (a
# member of the owner role may act as it only with the SET option; which role may replace whose objects; the options
# of a dump's subscriptions) again on the pgserver wheel's 16, and the lock table's, as pg_dump 16 locks its tables
# in one statement. TEST_WORKERS parallel workers, each with a server of its own: much of a test is waiting (for
# ansible-playbook to start, for a lock, for a killed run), so more workers than cores still shortens the run.
TEST_WORKERS ?= 3
PARALLEL := -n $(TEST_WORKERS) --maxschedchunk 1  # a test or two at a time to each worker, the slow ones first
pytest: venv test-tools
	$(BIN)/pytest $(PARALLEL)
	PHOENIX_TEST_SERVER=pgserver $(BIN)/pytest $(PARALLEL) tests/database/test_many_tables.py \
	  tests/database/test_swap_restore.py tests/database/test_lock_waits.py tests/database/test_logical_replication.py \
	  -k "test_many_tables or member or exactly_keeps or merely or empty_leftover or killed_at_any \
	      or superuser_objects or prepared or in_place_restore_behind or slot or subscription"

# Tested as the field runs them, with Debian's packages, installed when missing: the status page as chromium shows
# it, and the modules behind pgbouncer and pgpool-II. Each as command:package.
TEST_TOOLS := chromium:chromium pgbouncer:pgbouncer pgpool:pgpool2
test-tools:
	@missing=; for tool in $(TEST_TOOLS); do command -v $${tool%%:*} >/dev/null || [ -x /usr/sbin/$${tool%%:*} ] \
	  || missing="$$missing $${tool#*:}"; done; [ -z "$$missing" ] || { [ "$$(id -u)" = 0 ] && apt-get update -qq \
	  && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; } \
	  || { echo "make test-tools: the tests need Debian's$$missing (apt-get install$$missing, as root)"; exit 1; }

lint: venv
	ANSIBLE_HOST_PATTERN_MISMATCH=warning $(BIN)/ansible-lint  # its syntax check runs without an inventory
	$(BIN)/antsibull-changelog lint

sanity: venv
	bash tests/ansible_test.sh sanity

units: venv
	bash tests/ansible_test.sh units

# Each scenario on an embedded server of its own (its port and PHOENIX_HOME in its molecule.yml).
MOLECULE_SCENARIOS := $(notdir $(patsubst %/,%,$(dir $(wildcard extensions/molecule/*/molecule.yml))))
MOLECULE_RUNS := $(addprefix molecule-,$(MOLECULE_SCENARIOS))
.PHONY: $(MOLECULE_RUNS)
molecule: $(MOLECULE_RUNS)
$(MOLECULE_RUNS): molecule-%: venv
	$(BIN)/molecule test --scenario-name $*

bench: venv
	cd bench && for b in health_vs_ping worlds backup swap_load swap_parts split_rows large_objects many_tables restore_drill transfer integer_keys; do ../$(BIN)/python $$b.py; done
	cd bench && ../$(BIN)/python backup.py --tables 4

clean:
	rm -rf .ansible tests/output .pytest_cache
