# The two commands: `make run` (the whole stack in the foreground) and `make test`.
# Both install what is missing first and are idempotent.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
APT_PACKAGES := nginx-light libnginx-mod-http-lua lua-resty-core lua-resty-lrucache lua-cjson \
                lua-nginx-redis lua-nginx-string redis-server wrk bubblewrap gcc gnat gprbuild \
                chromium chromium-driver lua-check
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
STAMP_APT := var/.apt-installed
STAMP_VENV := $(VENV)/.created
STAMP_PIP := $(VENV)/.requirements-installed
STAMP_BENCH := $(VENV)/.bench-requirements-installed

.PHONY: run test bench setup clean

run: setup
	$(PY) -m object_challenge.dev.devstack run

test: setup
	$(PY) -m pytest $(PYTEST_ARGS)

bench: setup $(STAMP_BENCH)
	$(PY) bench/run.py $(BENCH_ARGS)

setup: $(STAMP_APT) $(STAMP_PIP)

# the Makefile is a prerequisite: a package added to the list is installed on the next make
$(STAMP_APT): Makefile
	@mkdir -p var
	@missing=""; for p in $(APT_PACKAGES); do \
	  dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi
	@# Debian starts the packaged nginx/redis services; the stack runs its own on private ports
	@-$(SUDO) systemctl disable --now nginx redis-server >/dev/null 2>&1 || true
	@touch $@

# a stamp, not bin/python: that is a symlink whose mtime is the interpreter's (always "old")
$(STAMP_VENV): .python-version
	@command -v pyenv >/dev/null && { pyenv install -s $$(cat .python-version) >/dev/null 2>&1 || true; }
	@PYBIN=$$(command -v python$$(cat .python-version) || pyenv which python$$(cat .python-version) 2>/dev/null); \
	if [ -z "$$PYBIN" ]; then echo "Python $$(cat .python-version) not found: install it with pyenv (see README)"; exit 1; fi; \
	echo "creating $(VENV) with $$PYBIN"; $$PYBIN -m venv $(VENV)
	@touch $@

$(STAMP_PIP): $(STAMP_VENV) requirements/base.txt requirements/dev.txt requirements/prod.txt
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements/dev.txt
	@touch $@

# benchmark-only packages (RQ, the baseline of bench/jobs.py)
$(STAMP_BENCH): $(STAMP_PIP) requirements/bench.txt
	$(PY) -m pip install -q -r requirements/bench.txt
	@touch $@

clean:
	rm -rf var/run var/test
