"""The server's own Python environment: the `tritonserver` of the nvidia-pytriton wheel, apart from dff's.

The wheel pins numpy < 2 and its Python-backend stub must run the model with that numpy, so the server gets a
virtual environment of its own (created once, cached): nvidia-pytriton, numpy < 2, the same onnxruntime as
dff's (so served labels equal local ones), opencv and tqdm; dff itself reaches the stub through PYTHONPATH, a
folder exposing only the ``dff`` package (never the caller's site-packages with numpy 2).

Three things the stub needs to start, found in the trial of issue 14: it must sit next to
``libtriton_python.so`` in a backend directory passed with ``--backend-directory``; the interpreter's own
``libpython`` must be on ``LD_LIBRARY_PATH``; and the environment's ``bin`` must come first on ``PATH``, where the
embedded interpreter looks for the ``python`` whose ``pyvenv.cfg`` gives it the environment's site-packages.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.metadata
import os
import shutil
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

import dff
from dff.errors import DFFError

#: The server wheel: tritonserver with the Python backend only.
PYTRITON = "nvidia-pytriton==0.7.0"
_MARKER = ".dff-server-env"  # written first: a folder without it is not ours and is never deleted
_READY = ".dff-server-env-ready"  # written last, holding the requirements it was made with


class ServerEnvironmentError(DFFError):
    """The server's environment cannot be created or is incomplete."""


def default_location() -> Path:
    """``$DFF_SERVER_ENV``, else ``$XDG_CACHE_HOME/dff`` (``~/.cache/dff``) / server-env-pyX.Y."""
    if os.environ.get("DFF_SERVER_ENV"):
        return Path(os.environ["DFF_SERVER_ENV"])
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "dff" / f"server-env-py{sys.version_info[0]}.{sys.version_info[1]}"


def requirements() -> list[str]:
    """What the server's environment installs; onnxruntime pinned to this environment's, for identical labels."""
    try:
        onnxruntime = f"onnxruntime=={importlib.metadata.version('onnxruntime')}"
    except importlib.metadata.PackageNotFoundError:
        onnxruntime = "onnxruntime"
    return [PYTRITON, "numpy<2", onnxruntime, "onnx", "opencv-python-headless", "tqdm"]


@dataclass(frozen=True)
class ServerEnvironment:
    """A ready environment: its interpreter, the server binary, the backend directory, the process environment."""

    root: Path

    @property
    def python(self) -> Path:
        return self.root / "bin" / "python"

    @property
    def site_packages(self) -> Path:
        version = f"python{sys.version_info[0]}.{sys.version_info[1]}"
        return self.root / "lib" / version / "site-packages"

    @property
    def tritonserver(self) -> Path:
        return self.site_packages / "pytriton" / "tritonserver" / "bin" / "tritonserver"

    @property
    def backend_directory(self) -> Path:
        return self.root / "backends"

    def process_environment(self, base: dict[str, str] | None = None) -> dict[str, str]:
        """The server's environment variables: this environment's Python first, its libpython and libraries found,
        and nothing of the caller's Python (PYTHONPATH, PYTHONHOME, VIRTUAL_ENV) leaking into the stub."""
        env = {k: v for k, v in (os.environ if base is None else base).items()}
        for name in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP"):
            env.pop(name, None)
        env["PATH"] = os.pathsep.join([str(self.root / "bin"), env.get("PATH", "/usr/bin:/bin")])
        libraries = [_libpython_dir(), str(self.site_packages / "nvidia_pytriton.libs")]
        if env.get("LD_LIBRARY_PATH"):
            libraries.append(env["LD_LIBRARY_PATH"])
        env["LD_LIBRARY_PATH"] = os.pathsep.join(libraries)
        env["PYTHONNOUSERSITE"] = "1"
        env["PYTHONPATH"] = str(self._dff_path())
        return env

    def _dff_path(self) -> Path:
        """A folder holding only a link to this dff package: dff on the stub's path without the caller's
        site-packages (numpy 2). One per dff location, so worktrees and versions share the environment."""
        package = Path(dff.__file__).resolve().parent
        folder = self.root / "dff-package" / hashlib.sha256(str(package).encode()).hexdigest()[:16]
        if not (folder / "dff").exists():
            folder.mkdir(parents=True, exist_ok=True)
            staged = folder / f".dff-{os.getpid()}"
            staged.symlink_to(package, target_is_directory=True)
            os.replace(staged, folder / "dff")  # atomic: servers starting together see one link
        return folder


@dataclass(frozen=True)
class InstalledServer:
    """A ``tritonserver`` installed otherwise (a container's, one on PATH): its own backends and Python, the
    environment as it is."""

    tritonserver: Path
    backend_directory: Path | None = None

    def process_environment(self, base: dict[str, str] | None = None) -> dict[str, str]:
        return dict(os.environ if base is None else base)


def _libpython_dir() -> str:
    if not sysconfig.get_config_var("Py_ENABLE_SHARED"):
        raise ServerEnvironmentError(
            f"the Python at {sys.base_prefix} has no shared libpython (built without --enable-shared), which "
            "Triton's Python-backend stub needs: run dff from a Python that has one (python.org, distribution, conda)"
        )
    return str(sysconfig.get_config_var("LIBDIR"))


def ensure_server_environment(root: str | Path | None = None, *, log=print) -> ServerEnvironment:
    """The server environment at ``root`` (default :func:`default_location`), created on first use (about a minute,
    needs pip's package index) and reused while its requirements are unchanged."""
    env = ServerEnvironment(Path(root) if root is not None else default_location())
    try:
        env.root.parent.mkdir(parents=True, exist_ok=True)
        # One creator at a time (test sessions, benchmarks and `dff serve` may start together); the others wait.
        with open(env.root.parent / f".{env.root.name}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            _ensure(env, log)
    except OSError as error:
        raise ServerEnvironmentError(
            f"cannot create the Triton server environment in {env.root}: {error.strerror or error}; "
            "set DFF_SERVER_ENV (or `dff serve --server-env`) to a writable folder"
        ) from None
    return env


def _ensure(env: ServerEnvironment, log) -> None:
    wanted = "\n".join(requirements())
    ready = env.root / _READY
    if ready.is_file() and ready.read_text() == wanted and env.tritonserver.is_file():
        return
    if env.root.exists() and not (env.root / _MARKER).is_file():
        raise ServerEnvironmentError(
            f"{env.root} exists and is not a dff server environment; remove it or set DFF_SERVER_ENV to another folder"
        )
    if env.root.exists():
        shutil.rmtree(env.root)  # ours (marked) but incomplete or stale
    env.root.mkdir(parents=True)
    (env.root / _MARKER).write_text("made by dff (dff.serve.environment); safe to delete\n")
    log(f"creating the Triton server environment in {env.root} (once; about a minute)")
    _run([sys.executable, "-m", "venv", str(env.root)], "create the virtual environment")
    _run([str(env.python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *requirements()], "install")
    _make_backend_directory(env)
    ready.write_text(wanted)


def _make_backend_directory(env: ServerEnvironment) -> None:
    """backends/python/: the wheel's Python backend (libtriton_python.so, triton_python_backend_utils.py) and,
    next to them, the stub built for this Python version."""
    shipped = env.site_packages / "pytriton" / "tritonserver"
    version = f"{sys.version_info[0]}.{sys.version_info[1]}"
    stub = shipped / "python_backend_stubs" / version / "triton_python_backend_stub"
    if not stub.is_file():
        raise ServerEnvironmentError(f"{PYTRITON} has no Python-backend stub for Python {version}; use Python 3.8-3.13")
    python_backend = env.backend_directory / "python"
    shutil.copytree(shipped / "backends" / "python", python_backend, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(stub, python_backend / "triton_python_backend_stub")


def _run(command: list[str], what: str) -> None:
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-5:])
        raise ServerEnvironmentError(f"cannot {what} for the Triton server ({' '.join(command[:4])} …): {tail}")
