"""Rank detection of a weight array: the numerical rank of every (out_channel, in_channel) 2-D
kernel slice, and the 1-D factors the separable strategy runs, cached per weight array.

Each slice W (kh x kw) is written as ``W ~ sum over t < r of outer(col_t, row_t)``; the kernel's
rank is the largest r over its slices (slices of lower rank get zero terms).

Rank 1, elementwise (the common case: Gaussian, box, binomial, Sobel, Scharr, Prewitt)
    A cross of the slice through its largest entry (p0, q0): ``col = W[:, q0]``,
    ``row = W[p0, :] / W[p0, q0]``. The slice is accepted as rank 1 when every entry satisfies
    ``|W[p, q] - col[p] * row[q]| <= RANK_UNITS * u * (|W[p, q]| + u * max|W|)`` (u the unit
    roundoff of the compute dtype). For a kernel built as ``outer(g, h)`` and rounded to the
    dtype, the cross reproduces each entry within about 4u of itself, so such kernels pass; zero
    rows and columns stay exactly zero. Error of the separable result then, per output y with
    local scale ``s = sum |w| * |x|`` over its window: truncation at most ``RANK_UNITS * u * s``
    (plus ``u**2``-sized terms), and the two passes' rounding at most
    ``gamma(kh + kw) * s * (1 + RANK_UNITS * u)`` since ``|col[p]| * |row[q]|`` is ``|W[p, q]|``
    within that factor: an elementwise bound like the direct sum's ``gamma(kh * kw) * s``.

Rank r >= 2 (difference of Gaussians, smoothed derivatives), normwise per window
    The slice's SVD in float64 (complex128 for complex data), ``sigma_1 >= sigma_2 >= ...``: r is
    the least rank whose dropped part has a Frobenius norm ``D = sqrt(sum of dropped sigma**2)``
    of at most ``RANK_UNITS * u * sigma_1``; ``col_t = sigma_t * U[:, t]`` and ``row_t = V[t, :]``.
    Dropping it changes an output by at most ``D * ||x_window||_2`` (Cauchy-Schwarz on the
    window), the rounding of the factors and passes adds about
    ``(kh + kw) * u * (sum of kept sigma) * ||x_window||_2``: a bound on each output by
    its own window (small outputs beside large ones keep their accuracy, unlike FFT), but
    relative to the window's norm rather than to ``sum |w| * |x|``, which it exceeds where the
    terms cancel (near the zero crossing of a difference of Gaussians). With RANK_UNITS = 8 the
    truncation is 8u * sigma_1 * ||x_window||: 1e-6 (float32) and 2e-15 (float64) of
    ``||w|| * ||x_window||``, a tenth and a fiftieth of the tests' elementwise tolerances
    (1e-5, 1e-13 of ``sum |w| * |x|``, which is within a factor of about two of the norms'
    product for smooth kernels and noise-like data).
    Measured (as sums of the dropped sigma, which bound D) on kernels rounded to the dtype:
    Gaussians 0.03u (3x3) to 1.5u (127x127), the rank-2 tails of differences of Gaussians 0.1u
    to 4u: all detected at their true rank; sums of random outer products (noise-like rounding,
    D about u * ||W||_F / 2) too.

Integers (the SciPy drop-ins compute them in int64)
    Only exact integer outer products run separably, in exact integer arithmetic: the slice is
    rank 1 when every 2x2 minor through its pivot is zero (checked exactly in int64 for entries
    below 2**31), and then ``W = outer(col, row)`` with ``col`` the pivot column divided by its
    gcd and ``row`` integer (a primitive column makes the row integral; checked). Any other
    integer kernel reports its floating-point rank (at least 2) and the strategy declines it.

Weights holding NaN or Inf have no rank (None).

Detection costs a SVD per slice that fails the cross test (tens of microseconds for a 63x63
slice); it runs once per weight array: the results are kept in a bounded, thread-safe LRU keyed
by a BLAKE2b digest of the weight bytes, shape and dtype (as the FFT strategy keys its spectra).
"""

import hashlib
import math
import threading
from dataclasses import dataclass

import cachetools
import numpy as np

# The rank tolerance in units of roundoff of the compute dtype (see the module docstring).
RANK_UNITS = 8
# Detections remembered (each holds the factors: (K, Cg, r, kh + kw) elements).
CACHE_ENTRIES = 64
# Entries of integer kernels whose exact 2x2 minors fit int64.
EXACT_LIMIT = 2**31


@dataclass(frozen=True, eq=False)
class Detection:
    """The rank of a weight array (K, Cg, kh, kw) and its factors: ``cols`` (K, Cg * R, kh) and
    ``rows`` (K, Cg * R, kw), R = max(rank, 1), term ``c * R + t`` of channel c; read-only, of
    the weights' dtype. ``rank`` is None (and the factors too) for weights holding NaN or Inf.
    Float weights of full rank min(kh, kw) have no factors either (None): the separable
    strategy never runs them, min(kh, kw) pairs of passes costing at least the kernel."""

    rank: int | None
    cols: np.ndarray | None
    rows: np.ndarray | None


def unit_roundoff(dtype):
    """u of a float or complex dtype (half the machine epsilon)."""
    return float(np.finfo(dtype).eps) / 2


def rank_tolerance(dtype):
    """The relative tolerance of the rank test for ``dtype``: RANK_UNITS * u."""
    return RANK_UNITS * unit_roundoff(dtype)


def _rank_one_float(slices, dtype):
    """(passes, cols, rows) of the elementwise cross test on ``slices`` (S, kh, kw)."""
    wide = np.complex128 if dtype.kind == "c" else np.float64
    s = slices.astype(wide)
    count, kh, kw = s.shape
    magnitude = np.abs(s)
    flat = magnitude.reshape(count, -1)
    pivot = flat.argmax(axis=1)
    largest = flat[np.arange(count), pivot]
    p0, q0 = pivot // kw, pivot % kw
    index = np.arange(count)
    cols = s[index, :, q0]
    pivots = s[index, p0, q0]
    safe = np.where(largest > 0, pivots, 1)
    rows = s[index, p0, :] / safe[:, None]
    # The factors as the runner will hold them (rounded to the compute dtype).
    cols_d, rows_d = cols.astype(dtype), rows.astype(dtype)
    approx = cols_d.astype(wide)[:, :, None] * rows_d.astype(wide)[:, None, :]
    u = unit_roundoff(dtype)
    limit = RANK_UNITS * u * (magnitude + u * largest[:, None, None])
    passes = np.all(np.abs(s - approx) <= limit, axis=(1, 2))
    return passes, cols_d, rows_d


def _svd_rank(slices, dtype):
    """(ranks, cols (S, kh, m), rows (S, m, kw)) of ``slices`` by their SVDs, m = min(kh, kw)."""
    wide = np.complex128 if dtype.kind in "c" else np.float64
    u_, sigma, vh = np.linalg.svd(slices.astype(wide), full_matrices=False)
    # tail[:, r] = sqrt(sum of sigma[r:] ** 2): the Frobenius norm of what rank r drops.
    tail = np.sqrt(np.cumsum(sigma[:, ::-1] ** 2, axis=1)[:, ::-1])
    tail = np.concatenate([tail, np.zeros((len(sigma), 1))], axis=1)
    tolerance = rank_tolerance(dtype) * sigma[:, :1]
    ranks = np.argmax(tail <= tolerance, axis=1)
    return ranks, u_ * sigma[:, None, :], vh


def _integer_rank_one(slices):
    """(exact, cols, rows): whether each integer slice is an exact integer outer product, and its
    integer factors (zero for the others)."""
    count, kh, kw = slices.shape
    cols = np.zeros((count, kh), np.int64)
    rows = np.zeros((count, kw), np.int64)
    exact = np.zeros(count, bool)
    for i, s in enumerate(slices):
        if not s.any():
            exact[i] = True
            continue
        if np.abs(s).max() >= EXACT_LIMIT:
            continue
        p0, q0 = np.unravel_index(np.abs(s).argmax(), s.shape)
        # Rank 1 iff every 2x2 minor through the pivot vanishes (exact: |products| < 2**62).
        if np.any(s * s[p0, q0] != np.outer(s[:, q0], s[p0, :])):
            continue
        col = s[:, q0] // math.gcd(*(int(v) for v in s[:, q0]))
        row = s[p0, :] // col[p0]
        if np.array_equal(np.outer(col, row), s):
            exact[i], cols[i], rows[i] = True, col, row
    return exact, cols, rows


def detect(w):
    """The :class:`Detection` of the weights ``w`` (K, Cg, kh, kw), a float, complex or int64
    array (uncached: see :func:`detection`)."""
    k, cg, kh, kw = w.shape
    dtype = w.dtype
    slices = w.reshape(k * cg, kh, kw)
    count = k * cg
    if dtype.kind in "fc" and not np.all(np.isfinite(w)):
        return Detection(None, None, None)
    if dtype.kind in "fc" and min(kh, kw) > 1 and (
            _svd_rank(slices[:1], dtype)[0][0] == min(kh, kw)):
        # A first slice of full rank makes the largest rank full (training's dense layers, whose
        # weights change every step: their 3x3 slices cost 0.4 ms each call in full analysis,
        # about a third of examples/train_digits.py's epoch).
        return Detection(min(kh, kw), None, None)
    ranks = np.ones(count, np.int64)
    zero = ~slices.reshape(count, -1).any(axis=1)
    if dtype.kind in "iu":
        exact, col1, row1 = _integer_rank_one(slices)
        rest = np.flatnonzero(~exact)
        if len(rest):
            # Not exact integer outer products: their floating-point rank, at least 2, and no
            # factors (the strategy declines them).
            svd_ranks = _svd_rank(slices[rest].astype(np.float64), np.dtype(np.float64))[0]
            ranks[rest] = np.maximum(svd_ranks, 2)
        ranks[zero] = 0
        return _assemble(w, ranks, exact & ~zero, col1.astype(dtype), row1.astype(dtype))
    passes, col1, row1 = _rank_one_float(slices, dtype)
    ranks[zero] = 0
    rest = np.flatnonzero(~passes)
    if not len(rest):
        return _assemble(w, ranks, passes & ~zero, col1, row1)
    svd_ranks, u_sigma, vh = _svd_rank(slices[rest], dtype)
    ranks[rest] = svd_ranks
    return _assemble(w, ranks, passes & ~zero, col1, row1, (rest, svd_ranks, u_sigma, vh))


def _assemble(w, ranks, one, col1, row1, svd=None):
    """The read-only Detection of rank max(ranks): the cross factors ``col1``/``row1`` of the
    slices marked ``one`` as their single term, the SVD's kept terms of the slices ``svd``
    gives (indices, ranks, U * sigma, V^H), zeros elsewhere. Array operations only: a loop over
    slices in Python took 0.5 s on the 49,152 3x3 slices of a 128->128 3x3x3 layer."""
    k, cg, kh, kw = w.shape
    rank = int(ranks.max())
    terms = max(rank, 1)
    cols = np.zeros((k * cg, terms, kh), w.dtype)
    rows = np.zeros((k * cg, terms, kw), w.dtype)
    cols[one, 0] = col1[one]
    rows[one, 0] = row1[one]
    if svd is not None:
        rest, svd_ranks, u_sigma, vh = svd
        m = min(terms, u_sigma.shape[2])
        kept = (np.arange(m)[None, :] < svd_ranks[:, None])[..., None]
        cols[rest, :m] = np.where(kept, np.moveaxis(u_sigma[:, :, :m], 2, 1), 0)
        rows[rest, :m] = np.where(kept, vh[:, :m, :], 0)
    cols = cols.reshape(k, cg * terms, kh)
    rows = rows.reshape(k, cg * terms, kw)
    cols.flags.writeable = False  # one Numba type, as the runner's other arrays
    rows.flags.writeable = False
    return Detection(rank, cols, rows)


class _DetectionCache:
    """Detections by weight digest, least recently used dropped first; thread-safe."""

    def __init__(self, size):
        self._lock = threading.Lock()
        self._entries = cachetools.LRUCache(maxsize=size)

    def get(self, key, compute):
        with self._lock:
            found = self._entries.get(key)
        # (A lookup, digest included, takes about 2 us on 5x5 weights.)
        if found is not None:
            return found
        found = compute()
        with self._lock:
            self._entries[key] = found
        return found

    def clear(self):
        with self._lock:
            self._entries.clear()

    def __len__(self):
        with self._lock:
            return len(self._entries)


_cache = _DetectionCache(CACHE_ENTRIES)


def detection(w):
    """:func:`detect` of ``w`` (C-contiguous), computed once per weight content."""
    digest = hashlib.blake2b(w.data, digest_size=16).digest()
    return _cache.get((digest, w.shape, w.dtype.str), lambda: detect(w))


def clear_detection_cache():
    """Forget every cached detection."""
    _cache.clear()


def detection_cache_size():
    """Detections held."""
    return len(_cache)


def worth_detecting(geometry, forced=False):
    """Whether validation detects the rank of this geometry's weights (a function of shapes and
    of ``forced``, so that a plan made from the same shapes, weights and method sees the same
    rank): kernels at least 2x2 whose slices take at least DETECT_WORK multiply-adds over the
    outputs of one output channel, unless the separable strategy is ``forced``; and either at
    most DETECT_ALWAYS weights or at least DETECT_OUTPUTS output pixels per weight, so that
    hashing them (about 1 ns per byte) stays a small fraction of any method's time; the
    separable strategy cannot win on dense layers over small images anyway."""
    g = geometry
    weights = g.out_channels * (g.channels // g.groups) * g.kernel_height * g.kernel_width
    return worth_detecting_slices(g.kernel_height, g.kernel_width, weights,
                                  g.batch * g.out_height * g.out_width, forced)


def worth_detecting_slices(kernel_height, kernel_width, weights, pixels, forced=False):
    """:func:`worth_detecting` from the numbers it reads: the 2-D slices' size, the count of
    weights and the output pixels per output channel (of every image)."""
    if min(kernel_height, kernel_width) < 2:
        return False
    if not forced and pixels * kernel_height * kernel_width < DETECT_WORK:
        return False
    return weights <= DETECT_ALWAYS or pixels >= DETECT_OUTPUTS


def forces_separable(method):
    """Whether ``method`` (a name, or a Plan) asks for the separable strategy."""
    return getattr(method, "method", method) == "separable"


DETECT_ALWAYS = 4096
DETECT_OUTPUTS = 2**15
# Below this many multiply-adds per output channel, 'auto' never chose the separable strategy
# (its smallest win over square 'same' images with k = 3 to 31 was k = 11 on 16x16: 31k), while
# the digest and cache lookup of the detection cost a small call about 2 us.
DETECT_WORK = 2**13
