# Two commands on a fresh Debian machine (as root): `make demo` runs the product, `make test`
# runs every test. Both install what they need, idempotently.

VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEBIAN_PACKAGES := redis-server haproxy chromium prometheus
PYTEST_ARGS ?=

.PHONY: demo test bench system-packages venv clean

system-packages:
	@missing=""; \
	for pkg in $(DEBIAN_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$pkg 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$pkg"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "Installing Debian packages:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

demo: system-packages venv
	$(PY) -m localcluster.demo

test: system-packages venv
	$(PY) -m pytest $(PYTEST_ARGS)

NODE_BASELINE := bench/baselines/node
BENCH_STAMP := $(VENV)/.bench-installed
BENCH_ARGS ?=

$(BENCH_STAMP): pyproject.toml $(STAMP)
	$(PY) -m pip install -q -e '.[test,bench]'
	touch $(BENCH_STAMP)

# The Node ws baseline needs npm (Debian's nodejs/npm, or the machine's own).
bench: system-packages venv $(BENCH_STAMP)
	@if command -v npm >/dev/null 2>&1; then \
	  test -d $(NODE_BASELINE)/node_modules/ws || (cd $(NODE_BASELINE) && npm ci --no-audit --no-fund); \
	  $(PY) -m bench.run $(BENCH_ARGS); \
	else \
	  echo "npm not found: running without the Node ws baseline"; \
	  $(PY) -m bench.run --skip-node $(BENCH_ARGS); \
	fi

clean:
	rm -rf $(VENV) var .pytest_cache
