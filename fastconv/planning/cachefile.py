"""The per-user cache file: calibrated machine constants and ``method="measure"`` winners, one
JSON file per CPU model and fastconv version. Reading it never breaks a call: a file that cannot
be read or parsed, or was written for another CPU, version or format, is ignored with a warning.
Writes replace the file atomically, under a lock between threads and processes."""

import json
import os
import re
import threading
import warnings

from .._version import __version__
from ..core import settings

FORMAT = 1
_lock = threading.Lock()


def cpu_model():
    """CPU model name and LLVM's name for the host CPU (the cache file's key)."""
    import platform

    import llvmlite.binding

    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{model} ({llvmlite.binding.get_host_cpu_name()})"


def path():
    """The cache file of this CPU model and fastconv version, in ``$FASTCONV_CACHE_DIR`` or the
    platform's user cache directory."""
    directory = settings.cache_dir()
    if directory is None:
        import platformdirs

        directory = platformdirs.user_cache_dir("fastconv")
    slug = re.sub(r"[^A-Za-z0-9]+", "-", cpu_model()).strip("-").lower()
    return os.path.join(directory, f"machine-{slug}-v{__version__}.json")


# Cache files already warned about: a bad file is reported once per process, not at each of its
# reads (constants, measured winners) and writes.
_warned = set()


def warn_once(file, message):
    """One RuntimeWarning per process about the cache file ``file``."""
    if file in _warned:
        return
    _warned.add(file)
    warnings.warn(message, RuntimeWarning, stacklevel=3)


def warn(file, reason):
    """The one warning about an unusable cache file."""
    warn_once(file, f"fastconv: ignoring the cache file {file}: {reason}. Using the shipped "
              "defaults; `python -m fastconv calibrate` rewrites it.")


def _parse(text, file, warn_about):
    """The cache file's content when it is valid for this CPU and version, else None."""
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as error:  # RecursionError: deeply nested arrays
        if warn_about:
            warn(file, f"not valid JSON ({error})")
        return None
    expected = {"format": FORMAT, "fastconv": __version__, "cpu": cpu_model()}
    if not isinstance(data, dict) or any(data.get(k) != v for k, v in expected.items()):
        if warn_about:
            warn(file, f"written for another format, version or CPU (expected {expected})")
        return None
    return data


def read(warn_about=True):
    """The cache file as a dict (empty when it is missing, unreadable, corrupt or stale; the last
    three with a RuntimeWarning when ``warn_about``)."""
    file = path()
    try:
        with open(file, encoding="utf-8") as f:
            text = f.read()
    except (FileNotFoundError, NotADirectoryError):  # missing (also under an unusable $HOME)
        return {}
    except (OSError, ValueError) as error:  # ValueError: not UTF-8
        if warn_about:
            warn(file, str(error))
        return {}
    return _parse(text, file, warn_about) or {}


def update(change):
    """Apply ``change(data)`` to the cache file's content under a lock, then replace the file
    atomically (temporary file + ``os.replace``), so a reader never sees a partial file and
    concurrent writers never corrupt it. Returns the written path."""
    file = path()
    directory = os.path.dirname(file)
    os.makedirs(directory, exist_ok=True)
    with _lock, _file_lock(file + ".lock"):
        data = read(warn_about=False)
        data.update(format=FORMAT, fastconv=__version__, cpu=cpu_model())
        change(data)
        temporary = f"{file}.{os.getpid()}.{threading.get_ident()}.tmp"
        try:
            with open(temporary, "w", encoding="utf-8") as f:
                json.dump(data, f, indent=1)
                f.flush()
                os.fsync(f.fileno())  # the replace must not outlive the content in a crash
            os.replace(temporary, file)
        finally:
            if os.path.exists(temporary):
                os.remove(temporary)
    return file


class _file_lock:
    """An exclusive lock on ``path`` between processes (POSIX ``flock``; where that is missing,
    only the atomic replace protects the file, so a concurrent update may be lost, never torn)."""

    def __init__(self, path):
        self.path = path
        self.fd = None

    def __enter__(self):
        try:
            import fcntl
        except ImportError:
            return self
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        if self.fd is not None:
            os.close(self.fd)  # closing releases the flock
            self.fd = None
