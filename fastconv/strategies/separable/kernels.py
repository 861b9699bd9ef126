"""Separable strategy: a kernel of rank r as r sums of two 1-D passes, vertical then horizontal.

Layout of the work: one parallel item is (image n, output channel k, block of output rows). For
each output row and each term (input channel c of k's group, rank term t), the vertical pass
combines the kh input rows under the output row into one padded row buffer ``v`` (the column
factor's taps, four rows per pass over the buffer), and the horizontal pass adds the row
factor's taps over ``v`` to the output row (eight per pass, the first term writing the row with
the bias). Both buffers stay in L1 (a 4096-wide float32 row is 16 KiB); the kh input rows an
output row reads are those of its neighbours, so they come from L2 and each input row is read
from memory about once per item.

Padding goes through the index maps of core/padding.py: a padded row that holds the constant
fill reads a buffer row of the fill; the vertical pass runs over the input columns only, and the
padded columns of ``v`` are copied from the input column they map to (the same combination of
the same rows), or are ``fill * sum(col)`` for a constant fill.

Tall kernels (ROWS4_FROM taps and more) at unit row stride and dilation take output rows four at
a time: one vertical pass reads four input rows for all four (_vertical_rows4). A kernel of
height 63 read every input row 63 times, once per output row; now about 16 times (4096^2
float32 Gaussian 63, 2 threads: 61-81 -> 47-51 ms; 2048^2 float64: 34-38 -> 22-27 ms).
"""

import numpy as np
from numba import prange

from ...core.jit import loop_helper, parallel_kernel
from ...core.padding import pad_columns


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


# Kernel heights from which unit-step rows go four at a time through _vertical_rows4 (below,
# the zero taps it adds at a group's ends cost more than the loads it saves).
ROWS4_FROM = 12
# Columns per chunk of _vertical_rows4: four chunks of v and the four input rows of a pass stay
# in L1.
ROWS4_CHUNK = 512


@loop_helper
def _vertical_rows4(buffers, pitch, left, width, xflat, rowmap, first_row, spread):
    """v_m = sum over p of col[p] * (padded row first_row + m + p of the channel plane whose
    flat view is ``xflat``) for the four rows m < 4 (unit row stride and dilation), v_m being
    the ``width`` columns from ``m * pitch + left`` of ``buffers``. Every row read is an input
    row (the caller checks). ``spread`` is col with three zeros before it and enough after it
    for whole groups of four input rows (those past the padded input read its last row, times
    zero).

    Each pass reads four input rows once for all four outputs (16 multiply-adds per four loads
    of input and four of v), where _vertical reads every input row once per output row. The
    rows of v and of the input are views of one array each, indexed from 0: as four arrays
    each, LLVM needed more checks that they do not overlap than it makes, and indexed from an
    offset, negative-index handling; either left the pass scalar."""
    last = rowmap.shape[0] - 1
    for j0 in range(0, width, ROWS4_CHUNK):
        count = min(ROWS4_CHUNK, width - j0)
        u0 = buffers[left + j0:left + j0 + count]
        u1 = buffers[pitch + left + j0:pitch + left + j0 + count]
        u2 = buffers[2 * pitch + left + j0:2 * pitch + left + j0 + count]
        u3 = buffers[3 * pitch + left + j0:3 * pitch + left + j0 + count]
        for j in range(count):
            u0[j] = 0
            u1[j] = 0
            u2[j] = 0
            u3[j] = 0
        for s in range(0, spread.shape[0] - 3, 4):
            x0 = xflat[rowmap[min(first_row + s, last)] * width + j0:]
            x1 = xflat[rowmap[min(first_row + s + 1, last)] * width + j0:]
            x2 = xflat[rowmap[min(first_row + s + 2, last)] * width + j0:]
            x3 = xflat[rowmap[min(first_row + s + 3, last)] * width + j0:]
            a0, a1, a2, a3 = spread[s + 3], spread[s + 4], spread[s + 5], spread[s + 6]
            b0, b1, b2, b3 = spread[s + 2], spread[s + 3], spread[s + 4], spread[s + 5]
            c0, c1, c2, c3 = spread[s + 1], spread[s + 2], spread[s + 3], spread[s + 4]
            d0, d1, d2, d3 = spread[s], spread[s + 1], spread[s + 2], spread[s + 3]
            for j in range(count):
                e0, e1, e2, e3 = x0[j], x1[j], x2[j], x3[j]
                u0[j] += a0 * e0 + a1 * e1 + a2 * e2 + a3 * e3
                u1[j] += b0 * e0 + b1 * e1 + b2 * e2 + b3 * e3
                u2[j] += c0 * e0 + c1 * e1 + c2 * e2 + c3 * e3
                u3[j] += d0 * e0 + d1 * e1 + d2 * e2 + d3 * e3


@loop_helper
def _horizontal(orow, v, row, dw, write, b):
    """orow (= b if ``write``, else +=) sum over q of row[q] * v[j + q * dw] (unit stride:
    contiguous slices, so the loops vectorise): eight taps per pass while eight remain (one load
    and store of the output row per eight loads of v; against four taps per pass, 4096^2
    float32 box 31 30-42 -> 24-25 ms, Gaussian 63 46-51 -> 40-42 ms), then four or fewer.
    Shorter passes padded with zero taps to eight (a kernel of 7 as one pass) were slower on
    float32."""
    kw = row.shape[0]
    wo = orow.shape[0]
    eights = kw // 8 * 8
    for q0 in range(0, eights, 8):
        s0, s1 = v[q0 * dw:q0 * dw + wo], v[(q0 + 1) * dw:(q0 + 1) * dw + wo]
        s2, s3 = v[(q0 + 2) * dw:(q0 + 2) * dw + wo], v[(q0 + 3) * dw:(q0 + 3) * dw + wo]
        s4, s5 = v[(q0 + 4) * dw:(q0 + 4) * dw + wo], v[(q0 + 5) * dw:(q0 + 5) * dw + wo]
        s6, s7 = v[(q0 + 6) * dw:(q0 + 6) * dw + wo], v[(q0 + 7) * dw:(q0 + 7) * dw + wo]
        w0, w1, w2, w3 = row[q0], row[q0 + 1], row[q0 + 2], row[q0 + 3]
        w4, w5, w6, w7 = row[q0 + 4], row[q0 + 5], row[q0 + 6], row[q0 + 7]
        if write and q0 == 0:
            for j in range(wo):
                orow[j] = (b + w0 * s0[j] + w1 * s1[j] + w2 * s2[j] + w3 * s3[j] + w4 * s4[j]
                           + w5 * s5[j] + w6 * s6[j] + w7 * s7[j])
        else:
            for j in range(wo):
                orow[j] += (w0 * s0[j] + w1 * s1[j] + w2 * s2[j] + w3 * s3[j] + w4 * s4[j]
                            + w5 * s5[j] + w6 * s6[j] + w7 * s7[j])
    for q0 in range(eights, kw, 4):
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
    rows4 = sh == 1 and dh == 1 and kh >= ROWS4_FROM
    # The kh + 3 input rows of four output rows, in whole groups of four, behind three zeros.
    spread_size = 4 * ((kh + 6) // 4) + 3 if rows4 else 0
    for item in prange(n_images * k_total * n_blocks):
        n = item // (k_total * n_blocks)
        k = (item // n_blocks) % k_total
        g = k // kg
        i0 = (item % n_blocks) * block_rows
        i1 = min(i0 + block_rows, ho)
        # v (one padded row, four with rows4), the fill row, then the spread column factor.
        v_size = (4 if rows4 else 1) * padded_width
        buffers = np.empty(v_size + width + spread_size, x.dtype)
        fillrow = buffers[v_size:v_size + width]
        for j in range(width):
            fillrow[j] = fill_value
        spread = buffers[v_size + width:]
        for p in range(spread_size):
            spread[p] = 0
        b = bias[k]
        check = fill_value * 0
        i = i0
        while i < i1:
            # Four output rows at once while they remain (rows4), else one.
            group = 1
            if rows4 and i + 4 <= i1:
                # Only rows of the input (a constant padding row reads the fill row instead).
                group = 4
                for r in range(i, min(i + spread_size - 3, rowmap.shape[0])):
                    if rowmap[r] < 0:
                        group = 1
            for t in range(terms):
                c = g * cg + t // per_channel
                col = cols[k, t]
                if group == 4:
                    for p in range(kh):
                        spread[3 + p] = col[p]
                    _vertical_rows4(buffers, padded_width, left, width, x[n, c].ravel(), rowmap,
                                    i, spread)
                else:
                    _vertical(buffers[left:left + width], x[n, c], rowmap, fillrow, i * sh, dh,
                              col)
                # Padded columns: the combination at the input column they map to, or the fill.
                border = fill_value * 0
                for p in range(kh):
                    border += col[p]
                border *= fill_value
                for m in range(group):
                    v = buffers[m * padded_width:(m + 1) * padded_width]
                    pad_columns(v, v[left:left + width], left, colmap, border)
                    if sw == 1:
                        _horizontal(out[n, k, i + m], v, rows[k, t], dw, t == 0, b)
                    else:
                        _horizontal_strided(out[n, k, i + m], v, rows[k, t], sw, dw, t == 0, b)
            for m in range(group):
                orow = out[n, k, i + m]
                for j in range(wo):
                    check += orow[j] * 0
            i += group
        checks[item] = check
