"""Direct strategy: valid cross-correlation of a virtually padded input, vectorised over output
columns.

Layout of the work: one parallel item is (image n, group g, block of output rows). The item first
copies the input rows its block needs into a small cache-resident *strip*, applying the padding
through index maps (so no padded copy of the whole image is made) and de-interleaving columns by
the stride (so the hot loop always reads contiguous memory, also for stride > 1). It then runs every
output channel of the group over the strip, four kernel taps per pass over an output row: the
output row is loaded and stored once per four FMAs instead of once per FMA.
"""

import numpy as np
from numba import prange

from .._jit import inline_helper, parallel_kernel


@inline_helper
def _fill_strip(x, n, c0, rowmap, colmap, left, fill, first_row, rows, strip):
    """Copy padded rows ``first_row .. first_row + rows`` of channels ``c0 ..`` into ``strip``.

    ``strip`` has shape (channels, rows_in, sw, Wq): padded column m lands in phase ``m % sw`` at
    index ``m // sw``. ``rowmap``/``colmap`` give the source index of each padded row/column, or -1
    for the constant ``fill``; ``left`` is the number of padded columns before column 0.
    """
    channels = strip.shape[0]
    sw = strip.shape[2]
    wq = strip.shape[3]
    width = x.shape[3]
    padded_width = colmap.shape[0]
    for c in range(channels):
        for r in range(rows):
            src = rowmap[first_row + r]
            if src < 0:
                for ph in range(sw):
                    dst = strip[c, r, ph]
                    for t in range(wq):
                        dst[t] = fill
                continue
            xrow = x[n, c0 + c, src]
            if sw == 1:
                # Stride 1: the interior is a contiguous copy; only the borders are gathered.
                dst = strip[c, r, 0]
                body = dst[left:left + width]
                for t in range(width):
                    body[t] = xrow[t]
                for m in range(left):
                    cm = colmap[m]
                    dst[m] = xrow[cm] if cm >= 0 else fill
                for m in range(left + width, padded_width):
                    cm = colmap[m]
                    dst[m] = xrow[cm] if cm >= 0 else fill
            else:
                for ph in range(sw):
                    dst = strip[c, r, ph]
                    for t in range(wq):
                        m = t * sw + ph
                        if m < padded_width:
                            cm = colmap[m]
                            dst[t] = xrow[cm] if cm >= 0 else fill


@inline_helper
def _tap_row(strip, tap, kh, kw, row0, dh, dw, wo):
    """The strip row segment that tap ``tap`` (flattened c, p, q) reads for one output row."""
    c = tap // (kh * kw)
    p = (tap // kw) % kh
    m = (tap % kw) * dw
    sw = strip.shape[2]
    start = m // sw
    return strip[c, row0 + p * dh, m % sw, start:start + wo]


@parallel_kernel
def correlate_direct(x, w, bias, rowmap, colmap, left, fill, sh, sw, dh, dw, groups, block_rows,
                     out):
    """out[n, k, i, j] = bias[k] + sum over (c, p, q) of
    w[k, c, p, q] * xpad[n, g*Cg + c, i*sh + p*dh, j*sw + q*dw].

    Preconditions: all arrays C-contiguous and of one dtype (``rowmap``/``colmap`` int64, ``fill``
    a 1-element array); ``xpad`` is ``x`` seen through the index maps, ``left`` the left padding;
    shapes are consistent.
    """
    n_images = x.shape[0]
    k_total, cg, kh, kw = w.shape
    ho, wo = out.shape[2], out.shape[3]
    kg = k_total // groups
    taps = cg * kh * kw
    wq = (colmap.shape[0] + sw - 1) // sw
    rows_in = (block_rows - 1) * sh + (kh - 1) * dh + 1
    n_blocks = (ho + block_rows - 1) // block_rows
    fill_value = fill[0]
    for item in prange(n_images * groups * n_blocks):
        n = item // (groups * n_blocks)
        g = (item // n_blocks) % groups
        i0 = (item % n_blocks) * block_rows
        i1 = min(i0 + block_rows, ho)
        rows = (i1 - 1 - i0) * sh + (kh - 1) * dh + 1
        strip = np.empty((cg, rows_in, sw, wq), dtype=x.dtype)
        _fill_strip(x, n, g * cg, rowmap, colmap, left, fill_value, i0 * sh, rows, strip)
        for k in range(g * kg, (g + 1) * kg):
            wk = w[k].ravel()
            for i in range(i0, i1):
                orow = out[n, k, i]
                b = bias[k]
                for j in range(wo):
                    orow[j] = b
                row0 = (i - i0) * sh
                t = 0
                while t + 4 <= taps:
                    x0 = _tap_row(strip, t, kh, kw, row0, dh, dw, wo)
                    x1 = _tap_row(strip, t + 1, kh, kw, row0, dh, dw, wo)
                    x2 = _tap_row(strip, t + 2, kh, kw, row0, dh, dw, wo)
                    x3 = _tap_row(strip, t + 3, kh, kw, row0, dh, dw, wo)
                    w0, w1, w2, w3 = wk[t], wk[t + 1], wk[t + 2], wk[t + 3]
                    for j in range(wo):
                        orow[j] += w0 * x0[j] + w1 * x1[j] + w2 * x2[j] + w3 * x3[j]
                    t += 4
                while t < taps:
                    x0 = _tap_row(strip, t, kh, kw, row0, dh, dw, wo)
                    w0 = wk[t]
                    for j in range(wo):
                        orow[j] += w0 * x0[j]
                    t += 1
