"""Runner of the FFT strategy: tile plan, kernel-spectrum cache, then the overlap-save kernel.

Tiling
    The padded input is cut into overlapping tiles of (lh, lw) points, each giving
    (lh - span_h + 1) x (lw - span_w + 1) stride-1 outputs (overlap-save). ``plan_tiles`` picks the
    tile shape and the number of images per parallel item with a cost model (transform, channel
    sum, copy and memory-traffic terms measured on the reference machine) under the workspace
    budget: the kernel spectra plus every worker's buffers never exceed
    the plan's workspace budget, whatever the image size. With zero padding, a single
    tile may be shorter than the padded input: its circular wrap then only reads zero padding.

Kernel-spectrum cache
    The spectra of the weights are kept in a process-wide LRU keyed by a BLAKE2b digest of the
    weight bytes, their shape and dtype, the dilation, the tile shape and the transform precision,
    so the same weights applied to many inputs are transformed once. It holds at most
    ``SPECTRUM_CACHE_ENTRIES`` entries and at most the plan's workspace budget in bytes, is
    thread-safe, and ``clear_spectrum_cache()`` empties it. Changing the weights in place changes
    the digest.

Numerics
    float32 data is transformed in complex64 and float64 in complex128. The error is normwise:
    at most about 0.6 * u * log2(lh * lw) * max(|x| * |w|) over an output plane (u the unit
    roundoff; measured, including data spanning 14 orders of magnitude and near-cancelling sums),
    within the tolerance table's FFT bound of twice that (tests/oracle.py ``fft_bound``). Outputs
    much smaller than the plane's largest therefore carry a larger relative error than with the
    direct method. A float32 channel sum longer than ``FP32_MAX_CHANNELS`` could exceed the bound,
    so such problems compute in complex128 and cast back. Integers (``correlate2d``/``convolve2d``
    drop-ins) are transformed in float64 and rounded to the nearest integer, as
    ``scipy.signal.fftconvolve`` does: exact while the rounding error stays below 0.5, which the
    bound guarantees when ``max|in1| * sum|in2| < 2**50 / log2(lh * lw)``; larger results may be
    off by small amounts. Complex problems are split into real and imaginary channel pairs.

Non-finite values
    The kernel replaces non-finite samples by zero and counts them; when there are any (or the
    weights hold any), the products with a non-finite factor are added back to the outputs whose
    window holds them, which gives exactly the direct method's NaN and Inf results. For complex
    problems, and problems where that patch would cost more than a quarter of the direct sum, the
    runner returns None and the plan's fallback (the direct strategy) computes the call.
"""

import hashlib
import threading
from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from functools import lru_cache

import cachetools
import numpy as np

from ...core.jit import serial_function
from ...core.padding import index_maps
from ...core.threads import numba_threads

SPECTRUM_CACHE_ENTRIES = 16
# Longest float32 channel sum (input channels per group, times 2 for complex data) computed in
# complex64. Measured error / (u * log2(M) * max |x|*|w|), all-positive data, 9x9 kernel: 0.26 at 16
# channels, 0.54 at 256, 0.59 at 1024, against 2 in the tolerance table; the sum's worst case grows
# linearly with its length, so longer ones compute in complex128.
FP32_MAX_CHANNELS = 1024

# Cost model, measured on the reference machine (1 thread; see _kernels/fft.py for the numbers).
# One 2-D transform costs FFT_NS * points * log2(points) while its complex buffer fits in
# CACHE_BYTES, and more per doubling beyond (SPILL_PER_DOUBLING): 256x256 fp32 forward + inverse
# 2.9 ns per point, 2048x2048 11 ns.
FFT_NS = {4: 0.09, 8: 0.19}
CACHE_BYTES = 512 * 2**10
SPILL_PER_DOUBLING = 0.3
# One complex multiply-add of the channel sums (fp32 20 GFLOP/s, fp64 7 GFLOP/s).
MAC_NS = {4: 0.4, 8: 1.1}
# Gathering one input sample into a tile (through the index maps) and writing one output.
GATHER_NS = 0.5
SCATTER_NS = 0.3
# Fixed cost of one transform call and of one parallel item.
CALL_NS = 1000.0
ITEM_NS = 5000.0
# Streaming bandwidth of one core from memory, for buffers that do not fit its L2.
BYTES_PER_NS = 10.0
L2_BYTES = 2 * 2**20

# Longest axis next_fast_len answers for: no array axis is longer.
LONGEST_AXIS = 2**48


def _kernels():
    """The compiled kernels, imported on first use: they load rocket-fft, whose import of
    scipy.fft was 0.25 s of ``import fastconv``'s 0.6 s."""
    from . import kernels

    return kernels


@lru_cache(maxsize=1)
def _smooth_lengths():
    """Every 2**a * 3**b * 5**c up to LONGEST_AXIS (about 5,000), sorted; built on first use."""
    lengths = []
    power5 = 1
    while power5 <= LONGEST_AXIS:
        power35 = power5
        while power35 <= LONGEST_AXIS:
            length = power35
            while length <= LONGEST_AXIS:
                lengths.append(length)
                length *= 2
            power35 *= 3
        power5 *= 5
    return sorted(lengths)


@lru_cache(maxsize=1)
def _smooth_floats():
    """_smooth_lengths as a float array (candidate tile lengths are sliced from it)."""
    return np.array(_smooth_lengths(), dtype=float)


def next_fast_len(n):
    """Smallest 2**a * 3**b * 5**c >= n (n <= LONGEST_AXIS): ``scipy.fft.next_fast_len(n,
    real=True)`` without importing scipy.fft (160 ms of ``import fastconv``). A bisection of a
    table: the search it replaces took 13 of a new shape's ~150 us of planning."""
    lengths = _smooth_lengths()
    return lengths[bisect_left(lengths, n)]


# Tiles longer than this many kernel spans (or this floor) are not considered, except the single
# tile: their transforms cost more per output than the overlap they save. Over 3000 random
# problems this raised the best estimate by 1% or more in 0.3% of them (at most 2.6%), and made
# planning a new 2048x2048 image 3x faster.
MAX_TILE_SPANS = 64
MAX_TILE_FLOOR = 512
# Candidate tile lengths: 5-smooth (a prime length such as 1031 is 5-6x slower than 1024), from
# SHORTEST_TILE to LONGEST_TILE points, or to LONG_SPAN_TILES spans for kernels longer than a
# quarter of it (a conv3d's height and width flattened into one axis, planning/ranks.py: a
# 128^3 float64 volume, 31^3 kernel, spans 4771 points; with the single tile its only candidate
# the FFT fitted 64 MiB on one worker, 99 ms, with 11520-point tiles on two, 38 ms).
SHORTEST_TILE = 8
LONGEST_TILE = 4096
LONG_SPAN_TILES = 4


@dataclass(frozen=True)
class Tiling:
    """How the FFT strategy cuts one problem: tile shape, outputs per tile, images per item."""

    lh: int
    lw: int
    vh: int
    vw: int
    images_per_item: int
    workers: int
    spectra_bytes: int
    workspace_bytes: int
    seconds: float
    budget: int
    """The workspace budget it was made for: the kernel-spectrum cache holds at most this."""


def real_sizes(geometry):
    """(real itemsize, parts): the transform precision and 2 for complex problems."""
    dtype = geometry.dtype
    parts = 2 if dtype.kind == "c" else 1
    if dtype.kind in "iu":
        return 8, 1
    itemsize = dtype.itemsize // parts
    if itemsize == 4 and (geometry.channels // geometry.groups) * parts > FP32_MAX_CHANNELS:
        itemsize = 8
    return itemsize, parts


def _single_length(out1, span, before, size, zero_wrap):
    """The length of one tile holding all ``out1`` stride-1 outputs of a padded axis (``before``
    points of padding, then ``size`` input points, then more padding; ``span`` the dilated kernel
    extent): ``out1 + span - 1`` points, or with zero padding (``zero_wrap``) only as many as
    hold every output and the input, and keep the circular wrap of the last outputs inside the
    padding before the input."""
    need = out1 + span - 1
    single = need
    if zero_wrap:
        single = max(span, out1, before + size, need - before)
    return next_fast_len(min(single, need))


def _tile_range(span, single):
    """Slice bounds of the 5-smooth lengths that are candidate tiles of an axis besides the
    single tile: from SHORTEST_TILE (and more than ``span``) to the longest the spans allow."""
    longest = min(single - 1, max(MAX_TILE_SPANS * span, MAX_TILE_FLOOR),
                  max(LONGEST_TILE, LONG_SPAN_TILES * span))
    smooth = _smooth_lengths()
    return bisect_left(smooth, max(span + 1, SHORTEST_TILE)), bisect_right(smooth, longest)


def _axis_candidates(out1, span, before, size, zero_wrap):
    """One axis for _search_tiles: (single tile length, slice bounds in _smooth_floats() of the
    other candidate lengths, span, stride-1 outputs); arguments as in _single_length."""
    single = _single_length(out1, span, before, size, zero_wrap)
    return (single, *_tile_range(span, single), span, out1)


@serial_function
def _candidate_lengths(smooth, axis):
    """Candidate tile lengths along one axis (_axis_candidates) and the outputs each gives, the
    single tile first."""
    single, start, stop, span, out1 = axis
    count = 1 + max(0, stop - start)
    lengths, outputs = np.empty(count), np.empty(count)
    lengths[0], outputs[0] = single, out1
    for k in range(1, count):
        lengths[k] = smooth[start + k - 1]
        outputs[k] = lengths[k] - (span - 1)
    return lengths, outputs


def _shortest_length(out1, span, before, size):
    """The shortest candidate length of an axis without zero_wrap (see _candidate_lengths)."""
    single = _single_length(out1, span, before, size, False)
    start, stop = _tile_range(span, single)
    return min(single, _smooth_lengths()[start]) if start < stop else single


def _buffer_bytes(geometry, lh, lw, images):
    """(kernel spectra bytes, one worker's buffer bytes) of (lh, lw) tiles holding ``images``."""
    g = geometry
    itemsize, parts = real_sizes(g)
    c_in, k_out = g.channels * parts, g.out_channels * parts
    return _pair_bytes(float(lh), float(lw), float(lw // 2 + 1), float(images), float(c_in),
                       float(k_out), float(c_in // g.groups), float(k_out // g.groups),
                       float(itemsize))


@serial_function
def _pair_bytes(lh, lw, half, images, c_in, k_out, cg, kg, itemsize):
    """(kernel spectra bytes, one worker's buffer bytes) of (lh, lw) tiles (``half`` =
    lw // 2 + 1) holding ``images``: integers held exactly in floats, so never decreasing in
    either length."""
    bins = lh * half
    spectra = k_out * cg * bins * (2 * itemsize)
    return spectra, (lh * lw * itemsize + 2 * bins * (2 * itemsize)
                     + images * ((c_in + kg) * bins * (2 * itemsize)))


@serial_function
def _search_tiles(smooth, axis_h, axis_w, batch, c_in, k_out, groups, itemsize,
                  fft_ns_per_point, mac_ns, threads, budget):
    """(seconds, images per item, lh, vh, lw, vw, workers) of the cheapest tiling that fits
    ``budget`` (axes from _axis_candidates, ``smooth`` from _smooth_floats); infinite seconds
    when none does. Images per item run through the powers of two below the batch, then the
    batch; each on the most workers whose buffers fit (those of the shortest tiles: bytes grow
    with the lengths); ties go to fewer images per item, then to shorter tiles.

    A pass prices a row of (row, column) pairs into a buffer, then scans it; tables of every
    pair's cost stored by a first loop and read by the passes, or pricing and comparing in one
    loop, made the search 1.4-1.7x slower. A row whose lower bound (each cost term that grows
    with the tile, at its least over the columns) reaches the best so far is skipped. 1000x1000
    image, 15x15 kernel, 74 x 74 pairs: 21.5 -> 9.8 us with both changes."""
    lengths_h, outputs_h = _candidate_lengths(smooth, axis_h)
    lengths_w, outputs_w = _candidate_lengths(smooth, axis_w)
    out1_h, out1_w = axis_h[4], axis_w[4]
    rows, cols = lengths_h.size, lengths_w.size
    cg, kg = c_in // groups, k_out // groups
    log_h = np.log2(lengths_h)
    log_w = np.log2(lengths_w)
    halves = lengths_w // 2 + 1
    log_bins = np.log2(halves) + np.log2(2 * itemsize / CACHE_BYTES)
    tiles_h = np.ceil(out1_h / outputs_h)
    tiles_w = np.ceil(out1_w / outputs_w)
    # The tiles after the single one are shorter than it, in increasing order.
    shortest_h, shortest_w = min(1, rows - 1), min(1, cols - 1)
    # Explicit loops: array expressions here took a second more to compile.
    column_points = column_logs = column_bins = column_outputs = np.inf
    for j in range(cols):
        column_points = min(column_points, tiles_w[j] * lengths_w[j])
        column_logs = min(column_logs, tiles_w[j] * lengths_w[j] * log_w[j])
        column_bins = min(column_bins, tiles_w[j] * halves[j])
        column_outputs = min(column_outputs, tiles_w[j] * outputs_w[j])
    seconds = np.empty(cols)
    best = (np.inf, 0.0, 0, 0, 0)
    images = 1.0
    while True:
        images = min(images, batch)
        batches = np.ceil(batch / images)
        for workers in range(threads, 0, -1):
            spectra, item_bytes = _pair_bytes(
                lengths_h[shortest_h], lengths_w[shortest_w], halves[shortest_w], images, c_in,
                k_out, cg, kg, itemsize)
            if spectra + workers * item_bytes > budget:
                continue
            found = (np.inf, 0.0, 0, 0, 0)
            for i in range(rows):
                lh, vh = lengths_h[i], outputs_h[i]
                row_ns = (lh * ((c_in + k_out) * fft_ns_per_point
                                * (log_h[i] * column_points + column_logs)
                                + k_out * cg * mac_ns * column_bins
                                + c_in * GATHER_NS * column_points)
                          + k_out * SCATTER_NS * vh * column_outputs)
                bound = batches * tiles_h[i] / workers * images * row_ns * 1e-9 * (1 - 1e-9)
                if bound >= min(found[0], best[0]):
                    continue
                for j in range(cols):
                    spectra, item_bytes = _pair_bytes(lh, lengths_w[j], halves[j], images, c_in,
                                                      k_out, cg, kg, itemsize)
                    points = lh * lengths_w[j]
                    bins = lh * halves[j]
                    spill = 1 + SPILL_PER_DOUBLING * max(0.0, log_h[i] + log_bins[j])
                    transform = fft_ns_per_point * (log_h[i] + log_w[j]) * points * spill + CALL_NS
                    image_ns = ((c_in + k_out) * transform + k_out * cg * mac_ns * bins
                                + c_in * GATHER_NS * points
                                + k_out * SCATTER_NS * vh * outputs_w[j])
                    fixed_ns = ITEM_NS
                    if spectra > L2_BYTES:
                        fixed_ns += spectra / BYTES_PER_NS
                    item_ns = images * image_ns + fixed_ns
                    if item_bytes > L2_BYTES:
                        item_ns += 2 * item_bytes / BYTES_PER_NS
                    tiles = batches * (tiles_h[i] * tiles_w[j])
                    seconds[j] = (np.inf if spectra + workers * item_bytes > budget
                                  else np.ceil(tiles / workers) * item_ns * 1e-9)
                for j in range(cols):
                    if seconds[j] < found[0]:
                        found = (seconds[j], images, i, j, workers)
            if found[0] < best[0]:
                best = found
            break
        if images == batch:
            i, j = best[2], best[3]
            return (best[0], best[1], lengths_h[i], outputs_h[i], lengths_w[j], outputs_w[j],
                    best[4])
        images *= 2


@lru_cache(maxsize=256)
def plan_tiles(geometry, threads, budget):
    """The cheapest tiling of ``geometry`` whose workspace fits ``budget``, or None.

    A pure function of shapes, options, thread count and budget. With zero padding (not the
    drop-ins' non-zero fill, padding mode "constant") the single tile's circular wrap may read it.
    """
    g = geometry
    itemsize, parts = real_sizes(g)
    zero_wrap = g.padding_mode == "zeros"
    axis_h = _axis_candidates((g.out_height - 1) * g.stride[0] + 1,
                              (g.kernel_height - 1) * g.dilation[0] + 1, g.padding[0], g.height,
                              zero_wrap)
    axis_w = _axis_candidates((g.out_width - 1) * g.stride[1] + 1,
                              (g.kernel_width - 1) * g.dilation[1] + 1, g.padding[2], g.width,
                              zero_wrap)
    c_in, k_out = g.channels * parts, g.out_channels * parts
    seconds, images, lh, vh, lw, vw, workers = _search_tiles(
        _smooth_floats(), axis_h, axis_w, float(g.batch), float(c_in), float(k_out),
        float(g.groups), float(itemsize), FFT_NS[itemsize], MAC_NS[itemsize], threads,
        float(budget))
    if seconds == np.inf:
        return None
    spectra, item_bytes = _buffer_bytes(g, lh, lw, images)
    return Tiling(lh=int(lh), lw=int(lw), vh=int(vh), vw=int(vw), images_per_item=int(images),
                  workers=int(workers), spectra_bytes=int(spectra),
                  workspace_bytes=int(spectra + workers * item_bytes), seconds=float(seconds),
                  budget=budget)


def declines(geometry, budget):
    """Why the FFT strategy cannot run ``geometry``: its smallest workspace (one worker, one
    image, the shortest tiles: the bytes grow with each) exceeds the budget."""
    g = geometry
    padded = (g.height + g.padding[0] + g.padding[1], g.width + g.padding[2] + g.padding[3])
    if max(padded) > LONGEST_AXIS:
        return "a padded axis longer than 2**48 points (the longest transform it plans)"
    if 8 * sum(padded) > budget:
        return (f"its index maps (8 bytes per padded row and column) exceed the workspace budget "
                f"of {budget / 2**20:.1f} MiB")
    lh = _shortest_length((g.out_height - 1) * g.stride[0] + 1,
                          (g.kernel_height - 1) * g.dilation[0] + 1, g.padding[0], g.height)
    lw = _shortest_length((g.out_width - 1) * g.stride[1] + 1,
                          (g.kernel_width - 1) * g.dilation[1] + 1, g.padding[2], g.width)
    spectra_bytes, item_bytes = _buffer_bytes(g, lh, lw, 1)
    if spectra_bytes + item_bytes <= budget:
        return None
    return (f"its kernel spectra and buffers do not fit the workspace budget of "
            f"{budget / 2**20:.1f} MiB; raise it with fastconv.set_workspace_budget")


class _SpectrumCache:
    """Kernel spectra by key, least recently used dropped first: at most SPECTRUM_CACHE_ENTRIES
    entries and at most the calling plan's workspace budget in bytes (emptied when a plan with
    another budget uses it). Thread-safe."""

    def __init__(self, max_entries):
        self._lock = threading.Lock()
        self._max_entries = max_entries
        self._entries = cachetools.LRUCache(maxsize=0, getsizeof=_entry_bytes)

    def get(self, key, compute, capacity):
        with self._lock:
            spectra = self._entries.get(key)
        if spectra is not None:
            return spectra
        spectra = compute()
        if spectra.nbytes > capacity:
            return spectra
        with self._lock:
            if self._entries.maxsize != capacity:
                self._entries = cachetools.LRUCache(maxsize=capacity, getsizeof=_entry_bytes)
            self._entries[key] = spectra
            while len(self._entries) > self._max_entries:
                self._entries.popitem()
        return spectra

    def clear(self):
        with self._lock:
            self._entries.clear()

    def usage(self):
        """(entries, bytes) held."""
        with self._lock:
            return len(self._entries), int(self._entries.currsize)


def _entry_bytes(spectra):
    return spectra.nbytes


_spectrum_cache = _SpectrumCache(SPECTRUM_CACHE_ENTRIES)


def spectrum_cache_usage():
    """(entries, bytes) of the kernel-spectrum cache."""
    return _spectrum_cache.usage()


def clear_spectrum_cache():
    """Forget every cached kernel spectrum."""
    _spectrum_cache.clear()


def _real_weights(w, parts, real_dtype):
    """Weights as a real (K * parts, Cg * parts, kh, kw) array: complex ones as the 2x2 real
    blocks [[re, -im], [im, re]] acting on (real, imaginary) channel pairs; non-finite taps zero."""
    if parts == 1:
        wr = w.astype(real_dtype)
    else:
        k, cg, kh, kw = w.shape
        wr = np.empty((2 * k, 2 * cg, kh, kw), real_dtype)
        wr[0::2, 0::2] = w.real
        wr[0::2, 1::2] = -w.imag
        wr[1::2, 0::2] = w.imag
        wr[1::2, 1::2] = w.real
    wr[~np.isfinite(wr)] = 0
    return wr


def _spectra(problem, tiling, parts, real_dtype):
    g = problem.geometry
    w = problem.w
    digest = hashlib.blake2b(w.data, digest_size=16).digest()
    key = (digest, w.shape, w.dtype.str, np.dtype(real_dtype).str, g.dilation,
           tiling.lh, tiling.lw)

    def compute():
        wr = _real_weights(w, parts, real_dtype)
        complex_dtype = np.result_type(real_dtype, np.complex64)
        spectra = np.empty(wr.shape[:2] + (tiling.lh, tiling.lw // 2 + 1), complex_dtype)
        _kernels().kernel_spectra(wr, g.dilation[0], g.dilation[1], tiling.lw,
                                  1.0 / (tiling.lh * tiling.lw), spectra)
        return spectra

    return _spectrum_cache.get(key, compute, tiling.budget)


def _split(array, parts, real_dtype):
    """The (parts,)-per-value real vector of a complex or real 1-D array, in ``real_dtype``."""
    if parts == 1:
        return np.ascontiguousarray(array, real_dtype)
    return np.ascontiguousarray(np.stack([array.real, array.imag], axis=-1).ravel(), real_dtype)


def run_fft(problem, tiling, threads):
    """Correlate ``problem`` by overlap-save FFT with ``tiling`` (:func:`plan_tiles`) on
    ``threads`` threads (already set); None when non-finite values need the direct strategy."""
    g = problem.geometry
    itemsize, parts = real_sizes(g)
    real_dtype = np.dtype(f"f{itemsize}")
    spectra = _spectra(problem, tiling, parts, real_dtype)

    rowmap, colmap = index_maps(g)
    left, width = g.padding[2], g.width
    if problem.colmap is not None:  # every row and column through the problem's own maps
        rowmap, colmap, left, width = problem.rowmap, problem.colmap, 0, 0
    out = np.empty(g.out_shape, g.dtype)
    x = problem.x
    out_view = out
    if parts == 2:
        x = x.view(x.real.dtype)
        out_view = out.view(out.real.dtype)
    tiles_h = -(-((g.out_height - 1) * g.stride[0] + 1) // tiling.vh)
    tiles_w = -(-((g.out_width - 1) * g.stride[1] + 1) // tiling.vw)
    items = -(-g.batch // tiling.images_per_item) * tiles_h * tiles_w
    bad = np.zeros(items, np.int64)
    with numba_threads(min(threads, tiling.workers)):
        _kernels().correlate_tiles(
            x, spectra, _split(problem.bias, parts, real_dtype), rowmap, colmap, left, width,
            _split(problem.fill, parts, real_dtype), parts, g.groups, tiling.lw,
            tiling.vh, tiling.vw, g.stride[0], g.stride[1], tiling.images_per_item,
            g.dtype.kind in "iu", out_view, bad,
        )
    bad_samples = int(bad.sum())
    bad_taps = int(np.count_nonzero(~np.isfinite(problem.w)))
    if bad_samples == 0 and bad_taps == 0:
        return out
    kh, kw = g.kernel_height, g.kernel_width
    patch_work = (bad_samples * (g.out_channels // g.groups) * kh * kw
                  + bad_taps * g.batch * g.out_height * g.out_width)
    if parts == 2 or problem.colmap is not None or 4 * patch_work > g.macs:
        return None
    regions = _bad_regions(bad, g, tiling, tiles_h, tiles_w)
    _kernels().add_non_finite_products(problem.x, problem.w, rowmap, colmap, problem.fill,
                                       g.stride[0], g.stride[1], g.dilation[0], g.dilation[1],
                                       g.groups, regions, out)
    return out


def _bad_regions(bad, geometry, tiling, tiles_h, tiles_w):
    """(n, row, end row, column, end column) of the padded input read by every item that met a
    non-finite sample: only these are searched for the non-finite products."""
    padded_h = geometry.height + geometry.padding[0] + geometry.padding[1]
    padded_w = geometry.width + geometry.padding[2] + geometry.padding[3]
    regions = []
    for item in np.flatnonzero(bad):
        block, tile = divmod(int(item), tiles_h * tiles_w)
        r0 = (tile // tiles_w) * tiling.vh
        c0 = (tile % tiles_w) * tiling.vw
        r1 = min(r0 + tiling.lh, padded_h)
        c1 = min(c0 + tiling.lw, padded_w)
        first = block * tiling.images_per_item
        for n in range(first, min(first + tiling.images_per_item, geometry.batch)):
            regions.append((n, r0, r1, c0, c1))
    return np.array(regions, np.int64).reshape(-1, 5)
