"""Every ``FASTCONV_*`` environment setting, read in one place.

FASTCONV_NO_CACHE=1
    Do not read or write Numba's on-disk cache (for read-only installs or when debugging).
FASTCONV_WORKSPACE_BYTES=N
    Default workspace budget in bytes (see :func:`fastconv.set_workspace_budget`).
FASTCONV_CACHE_DIR=PATH
    Directory of the calibrated machine constants and persisted measurements.
FASTCONV_PERSIST=1
    ``method="measure"`` stores its winners in that cache file unless the call says otherwise.

The first two are read once, at import; the last two at each use (so a process, or a test, can
change them at run time).
"""

import os

NUMBA_CACHE_ENABLED = os.environ.get("FASTCONV_NO_CACHE", "") in ("", "0")

DEFAULT_WORKSPACE_BYTES = int(os.environ.get("FASTCONV_WORKSPACE_BYTES", 64 * 2**20))


def cache_dir():
    """``FASTCONV_CACHE_DIR``, or None when unset or empty."""
    return os.environ.get("FASTCONV_CACHE_DIR") or None


def persist():
    """Whether ``FASTCONV_PERSIST`` asks ``method="measure"`` to store its winners."""
    return os.environ.get("FASTCONV_PERSIST", "") not in ("", "0")
