"""Separable strategy: a kernel of rank r as r sums of two 1-D passes, vertical then horizontal.

Layout of the work: one parallel item is (image n, output channel k, block of output rows). For
each output row and each term (input channel c of k's group, rank term t), the vertical pass
combines the kh input rows under the output row into one padded row buffer ``v`` (the column
factor's taps, four rows per pass over the buffer), and the horizontal pass adds the row
factor's taps over ``v`` to the output row (four per pass, the first term writing the row with
the bias). Both buffers stay in L1 (a 4096-wide float32 row is 16 KiB); the kh input rows an
output row reads are those of its neighbours, so they come from L2 and each input row is read
from memory about once per item.

Padding goes through the index maps of core/padding.py: a padded row that holds the constant
fill reads a buffer row of the fill; the vertical pass runs over the input columns only, and the
padded columns of ``v`` are copied from the input column they map to (the same combination of
the same rows), or are ``fill * sum(col)`` for a constant fill.
"""

import numpy as np
from numba import prange

from ...core.jit import loop_helper, parallel_kernel


@loop_helper
def _vertical(v, xc, rowmap, fillrow, first_row, dh, col):
    """v = sum over p of col[p] * (padded row first_row + p * dh of channel plane ``xc``)."""
    kh = col.shape[0]
    width = v.shape[0]
    for p0 in range(0, kh, 4):
        count = min(4, kh - p0)
        r0 = rowmap[first_row + p0 * dh]
        s0 = fillrow if r0 < 0 else xc[r0]
        c0 = col[p0]
        if count == 1:
            if p0 == 0:
                for j in range(width):
                    v[j] = c0 * s0[j]
            else:
                for j in range(width):
                    v[j] += c0 * s0[j]
            continue
        r1 = rowmap[first_row + (p0 + 1) * dh]
        s1 = fillrow if r1 < 0 else xc[r1]
        c1 = col[p0 + 1]
        if count == 2:
            if p0 == 0:
                for j in range(width):
                    v[j] = c0 * s0[j] + c1 * s1[j]
            else:
                for j in range(width):
                    v[j] += c0 * s0[j] + c1 * s1[j]
            continue
        r2 = rowmap[first_row + (p0 + 2) * dh]
        s2 = fillrow if r2 < 0 else xc[r2]
        c2 = col[p0 + 2]
        if count == 3:
            if p0 == 0:
                for j in range(width):
                    v[j] = c0 * s0[j] + c1 * s1[j] + c2 * s2[j]
            else:
                for j in range(width):
                    v[j] += c0 * s0[j] + c1 * s1[j] + c2 * s2[j]
            continue
        r3 = rowmap[first_row + (p0 + 3) * dh]
        s3 = fillrow if r3 < 0 else xc[r3]
        c3 = col[p0 + 3]
        if p0 == 0:
            for j in range(width):
                v[j] = c0 * s0[j] + c1 * s1[j] + c2 * s2[j] + c3 * s3[j]
        else:
            for j in range(width):
                v[j] += c0 * s0[j] + c1 * s1[j] + c2 * s2[j] + c3 * s3[j]


@loop_helper
def _horizontal(orow, v, row, dw, write, b):
    """orow (= b if ``write``, else +=) sum over q of row[q] * v[j + q * dw] (unit stride:
    contiguous slices, so the loops vectorise)."""
    kw = row.shape[0]
    wo = orow.shape[0]
    for q0 in range(0, kw, 4):
        count = min(4, kw - q0)
        a0 = q0 * dw
        s0 = v[a0:a0 + wo]
        w0 = row[q0]
        if count == 1:
            if write and q0 == 0:
                for j in range(wo):
                    orow[j] = b + w0 * s0[j]
            else:
                for j in range(wo):
                    orow[j] += w0 * s0[j]
            continue
        a1 = a0 + dw
        s1 = v[a1:a1 + wo]
        w1 = row[q0 + 1]
        if count == 2:
            if write and q0 == 0:
                for j in range(wo):
                    orow[j] = b + w0 * s0[j] + w1 * s1[j]
            else:
                for j in range(wo):
                    orow[j] += w0 * s0[j] + w1 * s1[j]
            continue
        a2 = a1 + dw
        s2 = v[a2:a2 + wo]
        w2 = row[q0 + 2]
        if count == 3:
            if write and q0 == 0:
                for j in range(wo):
                    orow[j] = b + w0 * s0[j] + w1 * s1[j] + w2 * s2[j]
            else:
                for j in range(wo):
                    orow[j] += w0 * s0[j] + w1 * s1[j] + w2 * s2[j]
            continue
        s3 = v[a2 + dw:a2 + dw + wo]
        w3 = row[q0 + 3]
        if write and q0 == 0:
            for j in range(wo):
                orow[j] = b + w0 * s0[j] + w1 * s1[j] + w2 * s2[j] + w3 * s3[j]
        else:
            for j in range(wo):
                orow[j] += w0 * s0[j] + w1 * s1[j] + w2 * s2[j] + w3 * s3[j]


@loop_helper
def _horizontal_strided(orow, v, row, sw, dw, write, b):
    """orow (= b if ``write``, else +=) sum over q of row[q] * v[j * sw + q * dw]: strided
    loads, one tap per pass (column stride > 1 only)."""
    wo = orow.shape[0]
    if write:
        for j in range(wo):
            orow[j] = b
    for q in range(row.shape[0]):
        a = q * dw
        wq = row[q]
        for j in range(wo):
            orow[j] += wq * v[a + j * sw]


@parallel_kernel
def correlate_separable(x, cols, rows, bias, rowmap, colmap, left, fill, sh, sw, dh, dw, groups,
                        block_rows, checks, out):
    """out[n, k, i, j] = bias[k] + sum over terms t of k and (p, q) of
    cols[k, t, p] * rows[k, t, q] * xpad[n, g*Cg + t // R, i*sh + p*dh, j*sw + q*dw],
    R = cols.shape[1] // Cg rank terms per input channel.

    Preconditions: arrays C-contiguous, of one dtype (``rowmap``/``colmap`` int64, ``fill`` a
    1-element array); ``xpad`` is ``x`` seen through the index maps, ``left`` the left padding;
    ``checks`` has one element per parallel item, set to 0 * (sum of the item's outputs): NaN
    when an output is not finite (float data). Shapes are consistent.
    """
    n_images, channels, height, width = x.shape
    k_total, terms, kh = cols.shape
    ho, wo = out.shape[2], out.shape[3]
    cg = channels // groups
    per_channel = terms // cg
    kg = k_total // groups
    padded_width = colmap.shape[0]
    fill_value = fill[0]
    n_blocks = (ho + block_rows - 1) // block_rows
    for item in prange(n_images * k_total * n_blocks):
        n = item // (k_total * n_blocks)
        k = (item // n_blocks) % k_total
        g = k // kg
        i0 = (item % n_blocks) * block_rows
        i1 = min(i0 + block_rows, ho)
        buffers = np.empty(padded_width + width, x.dtype)
        v = buffers[:padded_width]
        interior = v[left:left + width]
        fillrow = buffers[padded_width:]
        for j in range(width):
            fillrow[j] = fill_value
        b = bias[k]
        check = fill_value * 0
        for i in range(i0, i1):
            orow = out[n, k, i]
            for t in range(terms):
                c = g * cg + t // per_channel
                col = cols[k, t]
                _vertical(interior, x[n, c], rowmap, fillrow, i * sh, dh, col)
                # Padded columns: the combination at the input column they map to, or the fill.
                border = fill_value * 0
                for p in range(kh):
                    border += col[p]
                border *= fill_value
                for m in range(left):
                    cm = colmap[m]
                    v[m] = interior[cm] if cm >= 0 else border
                for m in range(left + width, padded_width):
                    cm = colmap[m]
                    v[m] = interior[cm] if cm >= 0 else border
                if sw == 1:
                    _horizontal(orow, v, rows[k, t], dw, t == 0, b)
                else:
                    _horizontal_strided(orow, v, rows[k, t], sw, dw, t == 0, b)
            for j in range(wo):
                check += orow[j] * 0
        checks[item] = check
