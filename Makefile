# Two commands on a fresh Debian machine (as root): `make demo` runs the product, `make test`
# runs every test. Both install what they need, idempotently, from the lock files in
# requirements/ (`make lock` writes them from pyproject.toml).

VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEBIAN_PACKAGES := redis-server haproxy chromium prometheus
PYTEST_ARGS ?=
DEMO_ARGS ?=
# requirements/dev.txt: the node's packages plus the test and benchmark extras (make demo, test,
# bench); requirements/node.txt: the node's alone (a production install of the wheel).
DEV_LOCK := requirements/dev.txt
NODE_LOCK := requirements/node.txt
UPGRADE ?=

.PHONY: demo test bench lock chaos chaos-packages system-packages venv clean

system-packages:
	@missing=""; \
	for pkg in $(DEBIAN_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$pkg 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$pkg"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "Installing Debian packages:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

# Exact versions with their hashes, then the checkout itself (editable, for the wstime-node
# script) without resolving anything again.
$(STAMP): pyproject.toml $(DEV_LOCK)
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --require-hashes --no-deps -r $(DEV_LOCK)
	$(PY) -m pip install -q --no-deps -e .
	touch $(STAMP)

venv: $(STAMP)

# Pins every package to the newest release pyproject.toml allows that the lock does not already
# pin (a new dependency, a changed bound); `make lock UPGRADE=1` moves every pin to the newest.
UV_COMPILE = $(VENV)/bin/uv pip compile --quiet pyproject.toml --generate-hashes \
	--python-version 3.11 --custom-compile-command "make lock" $(if $(UPGRADE),--upgrade)
lock: venv
	$(PY) -m pip install -q -e '.[lock]'
	$(UV_COMPILE) --extra test --extra bench -o $(DEV_LOCK)
	$(UV_COMPILE) -c $(DEV_LOCK) -o $(NODE_LOCK)

demo: system-packages venv
	$(PY) -m localcluster.demo $(DEMO_ARGS)

# Lint and format (ruff), types (mypy, strict on the pure core, health and sessions) and import rules
# (import-linter: the pure core imports no framework and no I/O, no import cycles), then every
# test.
test: system-packages chaos-packages venv
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy
	$(VENV)/bin/lint-imports
	$(PY) -m pytest $(PYTEST_ARGS)

# The continuity checker (chaos/): faults on a seeded schedule, then a verdict on the histories.
# CHAOS_ARGS='--seed 42 --duration 600' replays seed 42 for ten minutes of faults.
CHAOS_PACKAGES := faketime nftables iproute2
CHAOS_ARGS ?=

chaos-packages:
	@$(MAKE) --no-print-directory system-packages DEBIAN_PACKAGES="$(CHAOS_PACKAGES)"

chaos: system-packages chaos-packages venv
	$(PY) -m chaos $(CHAOS_ARGS)

NODE_BASELINE := bench/baselines/node
BENCH_ARGS ?=

# The Node ws baseline needs npm (Debian's nodejs/npm, or the machine's own).
bench: system-packages venv
	@if command -v npm >/dev/null 2>&1; then \
	  test -d $(NODE_BASELINE)/node_modules/ws || (cd $(NODE_BASELINE) && npm ci --no-audit --no-fund); \
	  $(PY) -m bench.run $(BENCH_ARGS); \
	else \
	  echo "npm not found: running without the Node ws baseline"; \
	  $(PY) -m bench.run --skip-node $(BENCH_ARGS); \
	fi

clean:
	rm -rf $(VENV) var .pytest_cache
