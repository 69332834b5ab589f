"""Runtime registry: each Lambda runtime id -> an interpreter found on this host and how to start it.

Interpreters installed by version managers live under root's home (mode 700), which the sandbox user
cannot traverse; so an interpreter tree outside /usr is bound into the sandbox at /var/lang (as on
Lambda) and exec'd there, never through a shim.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
import glob
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
PYTHON_BOOTSTRAP = HERE / "python" / "bootstrap.py"
NODE_BOOTSTRAP = HERE / "node" / "bootstrap.mjs"
RUBY_BOOTSTRAP = HERE / "ruby" / "bootstrap.rb"
#: Built by `make install` (javac + jar) inside the checkout: the handler interfaces and the Java client.
JAVA_BUILD = HERE.parents[2] / "build"
JAVA_CORE_JAR = JAVA_BUILD / "lamina-lambda-java-core.jar"
JAVA_RUNTIME_JAR = JAVA_BUILD / "lamina-java-runtime.jar"
#: Built by `make install` (cc -shared, runtimes/java/native): what lets a standby JVM take its function's
#: environment variables; without it Java environments are started on demand only.
JAVA_ENV_LIB = JAVA_BUILD / "liblamina-env.so"
#: Built by `make install` (cc -static, sandbox/standby.c): a `provided` standby, which execs the function's
#: bootstrap once assigned; without it `provided` environments are started on demand only.
STANDBY_EXEC = JAVA_BUILD / "lamina-standby"
#: Built by `make install` (cc -shared, runtimes/node/native): _X_AMZN_TRACE_ID set without setenv(3).
NODE_ENV_ADDON = JAVA_BUILD / "lamina-env.node"
#: Node.js majors from npm (`make install`: build/node/NN/node_modules/node/bin/node).
NODE_BUILD = JAVA_BUILD / "node"
#: The distribution's Python interpreters as trees of their own (`make install`: build/lang/python3.X, its
#: bin/python3.X a copy of /usr/bin/python3.X, its lib a link to /usr/lib), for binding at /var/lang.
LANG_BUILD = JAVA_BUILD / "lang"

PYTHON_VERSIONS = ("3.9", "3.10", "3.11", "3.12", "3.13")
NODE_MAJORS = ("18", "20", "22", "24")
RUBY_VERSIONS = ("3.2", "3.3", "3.4")
JAVA_MAJORS = ("11", "17", "21", "25")
JVM_DIRS = ("/usr/lib/jvm",)
PROVIDED = ("provided.al2023", "provided.al2", "provided")
#: Lambda bundles the AWS SDK in /var/runtime for Python functions; these are its top-level modules.
PYTHON_SDK_MODULES = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six")


#: Per family: names (and name prefixes) of variables its interpreter reads only at start.
_STARTUP_PREFIXES: dict[str, tuple[str, ...]] = {"python": ("PYTHON",), "ruby": ("RUBY", "GEM_")}
_STARTUP_NAMES: dict[str, frozenset[str]] = {
    "nodejs": frozenset({"NODE_OPTIONS", "NODE_PATH", "NODE_EXTRA_CA_CERTS", "NODE_ICU_DATA", "UV_THREADPOOL_SIZE"}),
    "java": frozenset({"JAVA_TOOL_OPTIONS", "_JAVA_OPTIONS", "JDK_JAVA_OPTIONS"}),
}


@dataclasses.dataclass(frozen=True, slots=True)
class Runtime:
    """A runtime id made concrete on this host."""

    id: str
    family: str  # python | nodejs | ruby | java | provided
    #: Host path of the interpreter binary (None for provided runtimes).
    interpreter: Path | None = None
    #: Interpreter tree to bind at /var/lang when it is not already under /usr.
    lang_root: Path | None = None
    #: Files for /var/runtime: (host path, name inside /var/runtime).
    runtime_files: tuple[tuple[Path, str], ...] = ()

    @property
    def takes_channel(self) -> bool:
        """lamina's own runtime clients (Python, Node.js) can talk to the Runtime API over an inherited
        socket (``_LAMINA_RUNTIME_FD``): a Unix stream pair instead of loopback TCP, about half the kernel's
        work per message. They fall back to ``AWS_LAMBDA_RUNTIME_API`` when it is missing."""
        return self.family in ("python", "nodejs")

    @property
    def speaks_frames(self) -> bool:
        """On that socket, lamina's own clients speak the Runtime API in frames rather than HTTP
        (runtime_api/frames.py): a dozen fewer parser callbacks and objects per message on lamina's loop."""
        return self.takes_channel

    def startup_variables(self, env: Mapping[str, str]) -> list[str]:
        """The function's variables this runtime's interpreter reads only as it starts (PYTHONPATH,
        NODE_OPTIONS, RUBYOPT, JAVA_TOOL_OPTIONS, ...): a function that sets one must get an interpreter
        started with it, not a standby one that is already running or a fork of the zygote."""
        prefixes = _STARTUP_PREFIXES.get(self.family, ())
        names = _STARTUP_NAMES.get(self.family, ())
        return sorted(name for name in env if name in names or name.startswith(prefixes))

    @property
    def can_standby(self) -> bool:
        """lamina's own runtime clients can be started before a function needs them and wait for one
        (``LAMINA_STANDBY``); a JVM only with liblamina-env.so, to take the function's variables; a custom
        runtime with lamina-standby, which waits in its place and execs the function's bootstrap."""
        if self.family == "java":
            return any(name == JAVA_ENV_LIB.name for _, name in self.runtime_files)
        if self.family == "provided":
            return any(name == STANDBY_EXEC.name for _, name in self.runtime_files)
        return self.family in ("python", "nodejs", "ruby")

    @property
    def execution_env(self) -> str | None:
        return None if self.family == "provided" else f"AWS_Lambda_{self.id}"

    def interpreter_in(self, lang_dir: str | None) -> str:
        """Path of the interpreter as the sandbox sees it (lang_dir is where lang_root is mounted)."""
        assert self.interpreter is not None
        if self.lang_root is None or lang_dir is None:
            return str(self.interpreter)
        return f"{lang_dir}/{self.interpreter.relative_to(self.lang_root)}"


def _under_usr(path: Path) -> bool:
    return path.parts[:2] == ("/", "usr")


def distribution_tree(version: str, lang_build: Path | None = None, usr: Path = Path("/usr")) -> Path | None:
    """build/lang/python<version>/bin/python<version> while it is a copy of /usr/bin/python<version> (the
    same size and modification time: `make install` copies with -p and again after an upgrade)."""
    copy = (lang_build or LANG_BUILD) / f"python{version}" / "bin" / f"python{version}"
    try:
        mine, theirs = copy.stat(), (usr / "bin" / f"python{version}").stat()
    except OSError:
        return None
    if copy.is_symlink() or (mine.st_size, mine.st_mtime_ns) != (theirs.st_size, theirs.st_mtime_ns):
        return None
    return copy


def _python_candidates(version: str) -> list[Path]:
    """Where to look for python<version>, best first: lamina's own interpreter, as a tree that can be
    bound at /var/lang (as on Lambda); then version managers' trees; then /usr/local and /usr. lamina's
    own interpreter under /usr (`make install` prefers the distribution's python3, built with PGO: see
    the Makefile) is taken as its copy in build/lang, else after the version managers' trees: a function
    sees Lambda's /var/lang/bin/python3.x wherever there is a tree to bind."""
    roots = [os.environ.get("PYENV_ROOT", ""), os.path.expanduser("~/.pyenv"), "/root/.pyenv"]
    found: list[Path] = []
    base = Path(sys.base_prefix) / "bin" / f"python{version}"
    own = f"{sys.version_info.major}.{sys.version_info.minor}" == version
    if own and not _under_usr(base):
        found.append(base)
    elif own and (tree := distribution_tree(version)) is not None:
        found.append(tree)
    for root in dict.fromkeys(r for r in roots if r):
        for prefix in sorted(glob.glob(f"{root}/versions/{version}.*"), reverse=True):
            found.append(Path(prefix) / "bin" / f"python{version}")
    if own and _under_usr(base):
        found.append(base)
    found += [Path(f"/usr/local/bin/python{version}"), Path(f"/usr/bin/python{version}")]
    return found


def _sdk_files() -> tuple[tuple[Path, str], ...]:
    files: list[tuple[Path, str]] = []
    for name in PYTHON_SDK_MODULES:
        spec = importlib.util.find_spec(name)
        if spec is None:
            continue
        if spec.submodule_search_locations:
            files.append((Path(list(spec.submodule_search_locations)[0]), name))
        elif spec.origin:
            files.append((Path(spec.origin), Path(spec.origin).name))
    return tuple(files)


def _python_runtime(version: str, real: Path, sdk: tuple[tuple[Path, str], ...]) -> Runtime:
    lang_root = None if _under_usr(real) else real.parent.parent
    return Runtime(f"python{version}", "python", real, lang_root, ((PYTHON_BOOTSTRAP, "bootstrap.py"),) + sdk)


def _find_python(version: str, sdk: tuple[tuple[Path, str], ...]) -> Runtime | None:
    for candidate in _python_candidates(version):
        try:
            real = candidate.resolve(strict=True)
        except OSError:
            continue
        if not os.access(real, os.X_OK) or "shims" in real.parts:
            continue
        return _python_runtime(version, real, sdk)
    return None


def _find_node(path: str | None = None) -> list[Runtime]:
    path = path or shutil.which("node")
    if not path:
        return []
    real = Path(path).resolve()
    try:
        out = subprocess.run([str(real), "--version"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return []
    match = re.match(r"v(\d+)\.", out.stdout.strip())
    if not match or match.group(1) not in NODE_MAJORS:
        return []
    lang_root = None if _under_usr(real) else real.parent.parent
    files = ((NODE_BOOTSTRAP, "bootstrap.mjs"),)
    if NODE_ENV_ADDON.is_file():
        files += ((NODE_ENV_ADDON, NODE_ENV_ADDON.name),)
    return [Runtime(f"nodejs{match.group(1)}.x", "nodejs", real, lang_root, files)]


def _npm_nodes(have: set[str]) -> list[Runtime]:
    """Node.js majors installed from npm's `node@NN` packages by `make install` (build/node/NN)."""
    out: list[Runtime] = []
    for binary in sorted(glob.glob(f"{NODE_BUILD}/*/node_modules/node/bin/node")):
        out += [r for r in _find_node(binary) if r.id not in have and r.id not in {o.id for o in out}]
    return out


def _find_ruby() -> list[Runtime]:
    """The host's ruby as `rubyX.Y`; a ruby older than Lambda's oldest (Debian 12 has 3.1) serves ruby3.2."""
    path = shutil.which("ruby")
    if not path:
        return []
    real = Path(path).resolve()
    try:
        out = subprocess.run([str(real), "-e", "print RUBY_VERSION"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return []
    match = re.match(r"(\d+)\.(\d+)\.", out.stdout.strip())
    if not match:
        return []
    version = f"{match.group(1)}.{match.group(2)}"
    if version not in RUBY_VERSIONS:
        if (int(match.group(1)), int(match.group(2))) >= (3, 2) or match.group(1) != "3":
            return []
        version = RUBY_VERSIONS[0]
    lang_root = None if _under_usr(real) else real.parent.parent
    return [Runtime(f"ruby{version}", "ruby", real, lang_root, ((RUBY_BOOTSTRAP, "bootstrap.rb"),))]


def _find_java() -> list[Runtime]:
    """One `javaNN` per JDK major under /usr/lib/jvm, once lamina's runtime jars have been built."""
    if not (JAVA_CORE_JAR.is_file() and JAVA_RUNTIME_JAR.is_file()):
        return []
    found: dict[str, Runtime] = {}
    files = ((JAVA_RUNTIME_JAR, JAVA_RUNTIME_JAR.name), (JAVA_CORE_JAR, JAVA_CORE_JAR.name))
    if JAVA_ENV_LIB.is_file():
        files += ((JAVA_ENV_LIB, JAVA_ENV_LIB.name),)
    homes = [home for base in JVM_DIRS for home in sorted(glob.glob(f"{base}/*"))]
    homes += sorted(glob.glob(f"{JAVA_BUILD}/jre-*"))  # jlinked by `make install` from Debian's JDKs
    for home in homes:
        try:
            real = (Path(home) / "bin" / "java").resolve(strict=True)
            release = (Path(home) / "release").read_text()
            security = (Path(home) / "conf" / "security" / "java.security").resolve(strict=True)
        except OSError:
            continue
        match = re.search(r'JAVA_VERSION="(\d+)', release)
        if not match or match.group(1) not in JAVA_MAJORS or not os.access(real, os.X_OK):
            continue
        # The JVM cannot start without its java.security; /etc (where Debian keeps it) is not in the sandbox.
        if not (_under_usr(security) or security.is_relative_to(real.parent.parent)):
            continue
        lang_root = None if _under_usr(real) else real.parent.parent
        found.setdefault(match.group(1), Runtime(f"java{match.group(1)}", "java", real, lang_root, files))
    return [found[major] for major in JAVA_MAJORS if major in found]


def _override(runtime_id: str, path: str, sdk: tuple[tuple[Path, str], ...]) -> Runtime:
    real = Path(path).resolve()
    if not os.access(real, os.X_OK):
        raise ValueError(f"LAMINA_RUNTIMES: {runtime_id}={path}: not an executable")
    python = re.fullmatch(r"python(3\.\d+)", runtime_id)
    if python:
        return _python_runtime(python.group(1), real, sdk)
    if re.fullmatch(r"nodejs\d+\.x", runtime_id):
        node = _find_node(str(real))
        if not node or node[0].id != runtime_id:
            raise ValueError(f"LAMINA_RUNTIMES: {runtime_id}={path}: that node is "
                             f"{node[0].id if node else 'not a supported major'}")
        return node[0]
    raise ValueError(f"LAMINA_RUNTIMES: {runtime_id}: only pythonX.Y and nodejsNN.x can be overridden")


def parse_overrides(text: str) -> dict[str, str]:
    """`nodejs22.x=/opt/node22/bin/node,python3.12=/usr/local/bin/python3.12` -> {id: path}."""
    out = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        runtime_id, sep, path = item.partition("=")
        if not sep or not runtime_id or not path:
            raise ValueError(f"LAMINA_RUNTIMES: {item!r} is not runtime-id=path")
        out[runtime_id.strip()] = path.strip()
    return out


class RuntimeRegistry:
    def __init__(self, runtimes: list[Runtime]) -> None:
        self._by_id = {r.id: r for r in runtimes}

    @classmethod
    def discover(cls, overrides: dict[str, str] | None = None) -> RuntimeRegistry:
        """What this host has, plus `overrides` (runtime id -> interpreter path, LAMINA_RUNTIMES) for
        Python and Node.js: e.g. a node@22 binary from npm serves nodejs22.x. Raises ValueError for
        an override that does not fit its id."""
        sdk = _sdk_files()
        found = [r for v in PYTHON_VERSIONS if (r := _find_python(v, sdk)) is not None]
        found += _find_node()
        found += _npm_nodes({r.id for r in found})
        found += _find_ruby()
        found += _find_java()
        standby = ((STANDBY_EXEC, STANDBY_EXEC.name),) if STANDBY_EXEC.is_file() else ()
        found += [Runtime(rid, "provided", runtime_files=standby) for rid in PROVIDED]
        for runtime_id, path in (overrides or {}).items():
            found.append(_override(runtime_id, path, sdk))
        return cls(found)

    def get(self, runtime_id: str) -> Runtime | None:
        return self._by_id.get(runtime_id)

    def ids(self) -> list[str]:
        return list(self._by_id)

    def all(self) -> list[Runtime]:
        return list(self._by_id.values())
