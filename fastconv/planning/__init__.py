"""Planning: which strategy runs a problem on how many threads, and why (plan.py); running a
plan (execute.py); the machine constants the cost models are priced with (constants.py), the
per-user cache file that holds calibrated constants and measured winners (cachefile.py),
``method="measure"`` (measure.py) and ``python -m fastconv calibrate`` (calibrate.py)."""
