# lamina — `make install`, `make run`, `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
DEBS   := bubblewrap util-linux e2fsprogs ruby golang-go
TOOLS  := bwrap setpriv nsenter mkfs.ext4 ruby go

.PHONY: install run test bench clean system-packages

install: $(STAMP)

# Debian packages lamina uses when it runs as root (bubblewrap for the sandbox).
# Only installed when we are root and they are missing; otherwise the README explains.
system-packages:
	@missing=""; for t in $(TOOLS); do command -v $$t >/dev/null 2>&1 || missing="$$missing $$t"; done; \
	if [ "$$(id -u)" = 0 ] && [ -n "$$missing" ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Debian packages: $(DEBS)"; \
	    (apt-get install -y -q $(DEBS) || (apt-get update -q && apt-get install -y -q $(DEBS))) >/dev/null; \
	fi

$(STAMP): pyproject.toml | system-packages
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

run: install system-packages
	$(VENV)/bin/lamina serve

test: install system-packages
	$(PY) -m pytest -q

bench: install
	$(PY) bench/invoke_bench.py

clean:
	rm -rf $(VENV) .lamina build *.egg-info src/*.egg-info
