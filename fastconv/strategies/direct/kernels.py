"""Direct strategy: valid cross-correlation of a virtually padded input, vectorised over output
columns.

Layout of the work: one parallel item is (image n, group g, block of output rows). The item first
copies the input rows its block needs into a small cache-resident *strip*, applying the padding
through index maps (so no padded copy of the whole image is made), de-interleaving columns by
the stride into a plane per column phase (so the hot loop always reads contiguous memory, also
for stride > 1) and ordering rows by their phase under the row stride (so output row r + 1 reads
the strip row after output row r's, in every stride, and blocks of short rows run as one flat
range: a 3x3 stride-2 layer 64 -> 64 channels of 56x56, batch 8, fp32, 2 threads, 13.6 ->
6.9 ms, where a pass per output row ran before). It then runs every
output channel of the group over the strip, several kernel taps per pass over an output row
(all nine of a 3x3 kernel in the first pass, else up to five, then four per pass): the output
row is loaded and stored once per pass instead of once per FMA, and the first pass writes the
row (with the bias) instead of accumulating. Tap offsets into the strip are computed once per
call, so a pass costs no integer division: with them, depthwise 3x3 on 56x56 rows ran
2.7x faster than computing each tap's view per pass (4.0 vs 10.8 ms, 8x128 channels, 1 thread).
3x3 kernels over unit column steps have their own row loops with the nine weights and column
offsets of a channel fixed at compile time: one channel (depthwise 3x3, one-channel images) in
one helper, several (RGB layers, conv3d's folded depth taps) in another, a pass per channel.
The strip fill and those row loops are called helpers (see core/jit.py's loop_helper); the tap
passes over short segments are inlined, since a call per segment cost depthwise 3x3 stride-2
layers (8x144 channels of 56x56, fp32) 1.56 -> 2.45 ms.
"""

import numpy as np
from numba import prange

from ...core.jit import inline_helper, loop_helper, parallel_kernel, serial_twin

# Output columns per pass: the output chunk and the input segments of every tap stay in L1
# across all passes over the taps.
COLUMN_CHUNK = 512
# Output rows narrower than this are computed block-wise as one flat range (see below).
FLAT_BELOW = 256
# Single-channel 3x3 kernels over unit column steps run row by row (_unit_rows_3x3) on output rows
# this wide or wider (up to COLUMN_CHUNK): on narrower rows the flat range was faster (fp32,
# 2 threads, medians: depthwise 8x256 channels of 28x28, flat 1.49 vs row by row 1.71 ms; 8x128
# of 56x56, row by row 1.56 vs flat 1.75 ms).
UNIT_ROWS_FROM = 32
# Constant padding on strips at most this wide: the whole strip is set to the fill value first and
# the per-row border sweep skipped, which costs more than the extra writes on narrow rows
# (fp32, 2 threads, minima: depthwise 3x3 8x128 channels of 56x56, 1.27 vs 1.52 ms), less on wide
# ones (4x256x256 one-channel images: 0.088 vs 0.080 ms).
PRESET_BELOW = 129


@loop_helper
def _deinterleave_pairs(xrow, even, odd, interior_start, interior_stop, left):
    """Column stride 2: the interiors of both phases (padded column 2t + ph is input column
    2t + ph - left) from one pass over the row's pairs of columns, where each phase had a strided
    pass of its own (de-interleaving 8x144 planes of 56x56 fp32, 2 threads: 2.1 -> 1.0 ms). The
    phases' interiors differ by at most one column at each end; those are copied alone. Called,
    not inlined: inlined, it cost the kernel's first compilation 1.6 s."""
    lo = max(interior_start[0], interior_start[1])
    hi = min(interior_stop[0], interior_stop[1])
    for ph in range(2):
        dst = even if ph == 0 else odd
        for t in range(interior_start[ph], lo):
            dst[t] = xrow[2 * t + ph - left]
        for t in range(max(hi, interior_start[ph]), interior_stop[ph]):
            dst[t] = xrow[2 * t + ph - left]
    if hi <= lo:
        return
    pairs = xrow[2 * lo - left:]
    even_body = even[lo:hi]
    odd_body = odd[lo:hi]
    for t in range(hi - lo):
        even_body[t] = pairs[2 * t]
        odd_body[t] = pairs[2 * t + 1]


@loop_helper
def _fill_strip(x, planes, n, c0, rowmap, colmap, left, fill, first_row, rows, sh, interior,
                preset, strip):
    """Copy padded rows ``first_row .. first_row + rows`` of channels ``c0 ..`` of image ``n``
    into ``strip``; channel c of image n is the plane ``x[planes[n, c]]``, or the fill where that
    is -1.

    ``strip`` has shape (channels, sw, R, Wq), R a multiple of the row stride ``sh``: padded
    column m lands in column phase ``m % sw`` at index ``m // sw``, and padded row
    ``first_row + r`` (``first_row`` a multiple of ``sh``) in row phase ``r % sh`` at index
    ``r // sh``, i.e. at strip row ``(r % sh) * (R // sh) + r // sh``. The rows are visited in
    strip order, each finding its r: visited in r order, finding the strip row, the kernel's
    first compilation took 1.2 s longer. ``rowmap``/``colmap`` give the source index of each
    padded row/column, or -1 for the constant ``fill``; ``left`` is the number of padded columns
    before column 0.
    ``preset``: the strip already holds ``fill`` everywhere and every padded position is the
    fill, so the border sweep is skipped.
    """
    channels = strip.shape[0]
    sw = strip.shape[1]
    per_phase = strip.shape[2] // sh
    wq = strip.shape[3]
    padded_width = colmap.shape[0]
    interior_start = interior[0]
    interior_stop = interior[1]
    for c in range(channels):
        plane = planes[n, c0 + c]
        if plane < 0:
            # A plane of fill (conv3d's depth padding), tested here and not with each row's
            # source: in the row loop the test made the copies 10% slower.
            if not preset:
                strip[c] = fill
            continue
        # Unsigned, it needs no negative-index wrap-around (depthwise 3x3 8x128 channels of
        # 56x56, fp32, one thread: the kernel about 5% faster).
        unsigned = np.uint64(plane)
        for row in range(strip.shape[2]):
            r = (row % per_phase) * sh + row // per_phase
            if r >= rows:
                continue
            src = rowmap[first_row + r]
            if src < 0:
                if preset:
                    continue
                for ph in range(sw):
                    dst = strip[c, ph, row]
                    for t in range(wq):
                        dst[t] = fill
                continue
            xrow = x[unsigned, src]
            if sw == 1:
                # Stride 1: the interior is a contiguous copy; the borders are gathered below.
                body = strip[c, 0, row, interior_start[0]:interior_stop[0]]
                for t in range(body.shape[0]):
                    body[t] = xrow[t]
            elif sw == 2:
                _deinterleave_pairs(xrow, strip[c, 0, row], strip[c, 1, row], interior_start,
                                    interior_stop, left)
            else:
                # Stride > 2: each phase's interior is a strided copy (padded column
                # t * sw + ph is input column t * sw + ph - left). Indexing views from 0 keeps
                # negative-index handling out of the loop (3x faster than indexing xrow).
                for ph in range(sw):
                    start = interior_start[ph]
                    dst = strip[c, ph, row, start:interior_stop[ph]]
                    src = xrow[start * sw + ph - left:]
                    for t in range(dst.shape[0]):
                        dst[t] = src[t * sw]
    # The borders (through the column map) in a second sweep: writing each row's few border
    # elements right after its vector copy made the fill 4x slower (1.9 vs 0.47 us per 56x56
    # plane, fp32, stride 1).
    if preset:
        return
    for c in range(channels):
        plane = planes[n, c0 + c]
        if plane < 0:
            continue
        unsigned = np.uint64(plane)
        for row in range(strip.shape[2]):
            r = (row % per_phase) * sh + row // per_phase
            if r >= rows:
                continue
            src = rowmap[first_row + r]
            if src < 0:
                continue
            xrow = x[unsigned, src]
            for ph in range(sw):
                dst = strip[c, ph, row]
                for t in range(interior_start[ph]):
                    cm = colmap[t * sw + ph]
                    dst[t] = xrow[cm] if cm >= 0 else fill
                for t in range(interior_stop[ph], wq):
                    m = t * sw + ph
                    if m < padded_width:
                        cm = colmap[m]
                        dst[t] = xrow[cm] if cm >= 0 else fill


def presets_strips(constant_padding, padded_width, sw):
    """Whether the kernel sets each strip to the fill before copying the input rows in: with
    constant padding on strips narrower than PRESET_BELOW. Decided outside the kernel: a
    ``min()`` of the index maps inside it compiles as a parallel reduction (kernel compile time
    9 -> 12 s)."""
    return constant_padding and -(-padded_width // sw) < PRESET_BELOW


def runs_unit_rows(kernel_shape, sw, dw, wo):
    """Whether the kernel computes its rows with _unit_rows_3x3: 3x3 kernels (``kernel_shape`` is
    an output channel's (channels, kh, kw)), unit column steps, and output rows UNIT_ROWS_FROM to
    COLUMN_CHUNK wide."""
    return (kernel_shape[1:] == (3, 3) and sw == 1 and dw == 1
            and UNIT_ROWS_FROM <= wo <= COLUMN_CHUNK)


def first_pass_taps(taps):
    """Taps of the first pass: nine for 3x3 (one fused pass ran depthwise 3x3 two times faster
    than passes of five and four: 1.1 vs 2.2 ms, 8x128 channels of 56x56, 2 threads), else two
    to five (one when there is only one) so that every later pass takes exactly four. Only
    these six first passes exist: each one inlined costs compile time (all nine counts took the
    direct kernel's from 9 to 11 s)."""
    if taps == 9:
        return 9
    return taps - 4 * ((taps - 2) // 4) if taps > 1 else 1


@inline_helper
def _first_pass(orow, b, flat, base, offsets, wk, count, wo):
    """orow = b + the first ``count`` (1 to 5, or 9) taps: writing the output row instead of
    initialising it and accumulating saves one pass over it."""
    x0 = flat[base + offsets[0]:base + offsets[0] + wo]
    w0 = wk[0]
    if count == 1:
        for j in range(wo):
            orow[j] = b + w0 * x0[j]
        return
    x1 = flat[base + offsets[1]:base + offsets[1] + wo]
    w1 = wk[1]
    if count == 2:
        for j in range(wo):
            orow[j] = b + w0 * x0[j] + w1 * x1[j]
        return
    x2 = flat[base + offsets[2]:base + offsets[2] + wo]
    w2 = wk[2]
    if count == 3:
        for j in range(wo):
            orow[j] = b + w0 * x0[j] + w1 * x1[j] + w2 * x2[j]
        return
    x3 = flat[base + offsets[3]:base + offsets[3] + wo]
    w3 = wk[3]
    if count == 4:
        for j in range(wo):
            orow[j] = b + w0 * x0[j] + w1 * x1[j] + w2 * x2[j] + w3 * x3[j]
        return
    x4 = flat[base + offsets[4]:base + offsets[4] + wo]
    w4 = wk[4]
    if count == 5:
        for j in range(wo):
            orow[j] = b + w0 * x0[j] + w1 * x1[j] + w2 * x2[j] + w3 * x3[j] + w4 * x4[j]
        return
    x5 = flat[base + offsets[5]:base + offsets[5] + wo]
    x6 = flat[base + offsets[6]:base + offsets[6] + wo]
    x7 = flat[base + offsets[7]:base + offsets[7] + wo]
    x8 = flat[base + offsets[8]:base + offsets[8] + wo]
    w5, w6, w7, w8 = wk[5], wk[6], wk[7], wk[8]
    for j in range(wo):
        orow[j] = (b + w0 * x0[j] + w1 * x1[j] + w2 * x2[j] + w3 * x3[j] + w4 * x4[j]
                   + w5 * x5[j] + w6 * x6[j] + w7 * x7[j] + w8 * x8[j])


@inline_helper
def _all_taps(target, b, flat, base, offsets, wk, first, width):
    """target = b + every tap over ``width`` outputs whose strip segments start at ``base``."""
    _first_pass(target, b, flat, base, offsets, wk, first, width)
    for t in range(first, offsets.shape[0], 4):
        o0, o1, o2, o3 = offsets[t], offsets[t + 1], offsets[t + 2], offsets[t + 3]
        x0 = flat[base + o0:base + o0 + width]
        x1 = flat[base + o1:base + o1 + width]
        x2 = flat[base + o2:base + o2 + width]
        x3 = flat[base + o3:base + o3 + width]
        w0, w1, w2, w3 = wk[t], wk[t + 1], wk[t + 2], wk[t + 3]
        for j in range(width):
            target[j] += w0 * x0[j] + w1 * x1[j] + w2 * x2[j] + w3 * x3[j]


@loop_helper
def _unit_rows_3x3(plane, i0, i1, b, flat, offsets, row_step, wk):
    """plane[i0:i1] = b + a single-channel 3x3 kernel over unit column steps: the column offsets
    (0, 1, 2) are constants, so each output row reads three strip rows instead of nine tap
    segments (depthwise 3x3 8x128 channels of 56x56, fp32, 2 threads, minima: 1.49 vs 1.78 ms)."""
    w0, w1, w2, w3, w4, w5, w6, w7, w8 = (wk[0], wk[1], wk[2], wk[3], wk[4], wk[5], wk[6], wk[7],
                                          wk[8])
    top, middle, bottom = offsets[0], offsets[3], offsets[6]
    wo = plane.shape[1]
    for i in range(i0, i1):
        base = (i - i0) * row_step
        s0 = flat[base + top:base + top + wo + 2]
        s1 = flat[base + middle:base + middle + wo + 2]
        s2 = flat[base + bottom:base + bottom + wo + 2]
        orow = plane[i]
        for j in range(wo):
            orow[j] = (b + w0 * s0[j] + w1 * s0[j + 1] + w2 * s0[j + 2]
                       + w3 * s1[j] + w4 * s1[j + 1] + w5 * s1[j + 2]
                       + w6 * s2[j] + w7 * s2[j + 1] + w8 * s2[j + 2])


@loop_helper
def _unit_rows_3x3_channels(plane, i0, i1, b, flat, offsets, row_step, wk):
    """_unit_rows_3x3 for several channels (conv3d's 3x3 kernels folded with their depth taps,
    RGB layers), a pass per channel over every row, its weights and offsets loaded once: an
    output row is stored once per channel instead of once per four taps (RGB 3x3 layer,
    8x3x112x112 -> 16 channels, fp32, 2 threads: 1.02 -> 0.91 ms). Called, not inlined: the
    first fp32 call of the direct strategy compiled in 10.5 s with it inlined, 9.6 s called."""
    wo = plane.shape[1]
    for c in range(offsets.shape[0] // 9):
        w0, w1, w2, w3, w4, w5, w6, w7, w8 = (
            wk[9 * c], wk[9 * c + 1], wk[9 * c + 2], wk[9 * c + 3], wk[9 * c + 4],
            wk[9 * c + 5], wk[9 * c + 6], wk[9 * c + 7], wk[9 * c + 8])
        top, middle, bottom = offsets[9 * c], offsets[9 * c + 3], offsets[9 * c + 6]
        for i in range(i0, i1):
            orow = plane[i]
            base = (i - i0) * row_step
            s0 = flat[base + top:base + top + wo + 2]
            s1 = flat[base + middle:base + middle + wo + 2]
            s2 = flat[base + bottom:base + bottom + wo + 2]
            if c == 0:
                for j in range(wo):
                    orow[j] = (b + w0 * s0[j] + w1 * s0[j + 1] + w2 * s0[j + 2]
                               + w3 * s1[j] + w4 * s1[j + 1] + w5 * s1[j + 2]
                               + w6 * s2[j] + w7 * s2[j + 1] + w8 * s2[j + 2])
            else:
                for j in range(wo):
                    orow[j] += (w0 * s0[j] + w1 * s0[j + 1] + w2 * s0[j + 2]
                                + w3 * s1[j] + w4 * s1[j + 1] + w5 * s1[j + 2]
                                + w6 * s2[j] + w7 * s2[j + 1] + w8 * s2[j + 2])


@parallel_kernel
def correlate_direct(x, planes, w, bias, rowmap, colmap, left, fill, sh, sw, dh, dw, groups,
                     block_rows, first, preset, unit_rows, out, out_planes):
    """out[out_planes[n, k], i, j] = bias[k] + sum over (c, p, q) of
    w[k, c, p, q] * xpad[n, g*Cg + c, i*sh + p*dh, j*sw + q*dw].

    Preconditions: all arrays C-contiguous and of one dtype (``planes``/``out_planes``/
    ``rowmap``/``colmap`` int64, ``fill`` a 1-element array); ``x`` is a stack of (H, W) planes,
    channel c of image n the plane ``x[planes[n, c]]`` (-1: the fill), so that a caller can hand
    the kernel channels that overlap in memory (conv3d's depth taps) without copying them;
    ``out`` a stack of (Ho, Wo) planes, output channel k of image n the plane
    ``out[out_planes[n, k]]`` (conv3d's output depths land in place); ``xpad`` is the input seen
    through the index maps, ``left`` the left padding;
    ``first`` is ``first_pass_taps`` of the taps per output channel; ``preset`` says every padded
    position is the constant fill and strips are set to it first (``presets_strips``);
    ``unit_rows`` is ``runs_unit_rows`` of the geometry; shapes are consistent.
    """
    n_images = planes.shape[0]
    k_total, cg, kh, kw = w.shape
    ho, wo = out.shape[1], out.shape[2]
    kg = k_total // groups
    taps = cg * kh * kw
    wq = (colmap.shape[0] + sw - 1) // sw
    rows_in = (block_rows - 1) * sh + (kh - 1) * dh + 1
    per_phase = (rows_in + sh - 1) // sh
    strip_rows = per_phase * sh
    n_blocks = (ho + block_rows - 1) // block_rows
    fill_value = fill[0]
    # Offset in the flat strip (see _fill_strip: a plane of rows per channel and column phase,
    # rows ordered by row phase) of the segment each tap (flattened c, p, q) reads for output row
    # 0 of a block; output row r of the block reads r rows further, in every stride.
    offsets = np.empty(taps, np.int64)
    for t in range(taps):
        m = (t % kw) * dw
        r = ((t // kw) % kh) * dh
        row = (r % sh) * per_phase + r // sh
        offsets[t] = (((t // (kh * kw)) * sw + m % sw) * strip_rows + row) * wq + m // sw
    row_step = wq
    # Strip columns interior[0, ph] .. interior[1, ph] of stride phase ph read input columns
    # (padded column t * sw + ph is input column t * sw + ph - left); the rest are padding.
    # ``left`` past the last column marks gathered column maps (the runner's compaction): no
    # interior, every column goes through the map.
    interior = np.empty((2, sw), np.int64)
    for ph in range(sw):
        interior[0, ph] = max(0, left - ph + sw - 1) // sw
        interior[1, ph] = max(interior[0, ph], (left + x.shape[2] - ph + sw - 1) // sw)
        if left >= colmap.shape[0]:
            interior[1, ph] = interior[0, ph]
    # Short rows: a pass runs over all rows of the block at once, as one flat range of the
    # strip's pitch, into a scratch block copied out afterwards; the columns between the row ends
    # are computed and dropped. A pass per short row costs more in set-up than in arithmetic
    # (1 thread: depthwise 3x3 56x56 8x128 channels 3.8 -> 3.3 ms; 16->16 channels 64x64 3x3
    # batch 8 4.5 -> 3.0 ms).
    flat_rows = wo < FLAT_BELOW and not unit_rows
    for item in prange(n_images * groups * n_blocks):
        n = item // (groups * n_blocks)
        g = (item // n_blocks) % groups
        i0 = (item % n_blocks) * block_rows
        i1 = min(i0 + block_rows, ho)
        rows = (i1 - 1 - i0) * sh + (kh - 1) * dh + 1
        # One allocation per item: the strip, one spare row pitch (flat passes read past the
        # last row for the dropped columns), then the flat passes' scratch.
        strip_size = cg * sw * strip_rows * wq
        buffers = np.empty(strip_size + row_step + (block_rows * row_step if flat_rows else 0),
                           dtype=x.dtype)
        flat = buffers[:strip_size + row_step]
        flat[strip_size:] = 0
        strip = flat[:strip_size].reshape((cg, sw, strip_rows, wq))
        rows_out = buffers[strip_size + row_step:]
        if preset:
            for t in range(strip_size):
                flat[t] = fill_value
        _fill_strip(x, planes, n, g * cg, rowmap, colmap, left, fill_value, i0 * sh, rows, sh,
                    interior, preset, strip)
        # Segments: 512-element chunks of the flat range, or of each output row. One call site
        # of _all_taps for both: each site inlines every first-pass variant, and two sites took
        # the kernel's compile time (fp32) from 9.3 to 13.9 s.
        span = (i1 - i0) * row_step
        chunks = ((span if flat_rows else wo) + COLUMN_CHUNK - 1) // COLUMN_CHUNK
        segments = chunks if flat_rows else (i1 - i0) * chunks
        for k in range(g * kg, (g + 1) * kg):
            wk = w[k].ravel()
            b = bias[k]
            if unit_rows and cg == 1:
                _unit_rows_3x3(out[out_planes[n, k]], i0, i1, b, flat, offsets, row_step, wk)
                continue
            if unit_rows:
                _unit_rows_3x3_channels(out[out_planes[n, k]], i0, i1, b, flat, offsets, row_step,
                                        wk)
                continue
            for s in range(segments):
                if flat_rows:
                    base = s * COLUMN_CHUNK
                    width = min(COLUMN_CHUNK, span - base)
                    target = rows_out[base:base + width]
                else:
                    i = i0 + s // chunks
                    j0 = (s % chunks) * COLUMN_CHUNK
                    width = min(COLUMN_CHUNK, wo - j0)
                    target = out[out_planes[n, k], i, j0:j0 + width]
                    base = (i - i0) * row_step + j0
                _all_taps(target, b, flat, base, offsets, wk, first, width)
            if flat_rows:
                for i in range(i0, i1):
                    orow = out[out_planes[n, k], i]
                    src = rows_out[(i - i0) * row_step:]
                    for j in range(wo):
                        orow[j] = src[j]


# Calls planned on one thread (most small ones, dask's tasks) run this one: no parallel launch,
# half the first compilation (core/jit.py).
correlate_direct_serial = serial_twin(correlate_direct)
