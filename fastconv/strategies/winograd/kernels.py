"""Winograd strategy: 3x3 stride-1 layers with Winograd's minimal filtering F(2x2, 3x3) (Lavin &
Gray, CVPR 2016), 16 multiplies per 2x2 outputs instead of 36.

Each 2x2 output tile reads a 4x4 input patch d; with the fixed matrices

    B^T = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]]
    G   = [[1, 0, 0], [1/2, 1/2, 1/2], [1/2, -1/2, 1/2], [0, 0, 1]]
    A^T = [[1, 1, 1, 0], [0, 1, -1, -1]]

the tile is y = A^T [ sum over c of (G g_kc G^T) * (B^T d_c B) ] A (elementwise product), which
is the cross-correlation of d with g. So per work item: the input patches of a block of tiles are
transformed into V (16, Cg, tiles); 16 BLAS GEMMs give M[xi] = U[xi] (Kg x Cg) @ V[xi]; the
inverse transform of M plus the bias is the output. U = G g G^T is computed once per call.

A work item is (group, block of tile rows, block of tile columns); tile rows run over the images
of the batch, so small images share one item and the GEMMs stay wide. Each slot (one per thread)
owns its V and M buffers and calls a single-threaded BLAS. The input is read through the padding
index maps (every padding mode); tiles past the output's last row or column read the fill value
and their outputs are not written.
"""

from numba import prange

from ...core.blas import gemm
from ...core.jit import loop_helper, parallel_kernel


@parallel_kernel
def transform_weights(w, groups, scratch, u):
    """u[g, 4a + b, k, c] = (G w[g * Kg + k, c] G^T)[a, b]: the weights of each group as 16
    matrices (Kg, Cg), the GEMMs' left operands. ``scratch`` (slots, 21, Cg): per slot, the 9
    taps then the 12 entries of G w, each a row over the input channels, so that every loop
    writes one contiguous row (vectorised)."""
    k_total, cg = w.shape[0], w.shape[1]
    kg = k_total // groups
    slots = scratch.shape[0]
    for slot in prange(slots):
        taps = scratch[slot, :9]
        gw = scratch[slot, 9:]
        for k in range(slot * k_total // slots, (slot + 1) * k_total // slots):
            g = k // kg
            wk = w[k]
            for p in range(3):
                for q in range(3):
                    tap = taps[3 * p + q]
                    for c in range(cg):
                        tap[c] = wk[c, p, q]
            for q in range(3):
                # Rows of G f: f_0, (f_0 + f_1 + f_2) / 2, (f_0 - f_1 + f_2) / 2, f_2.
                _copy(taps[q], cg, gw[q])
                _mix3(taps[q], taps[3 + q], taps[6 + q], 1, 0.5, cg, gw[3 + q])
                _mix3(taps[q], taps[3 + q], taps[6 + q], -1, 0.5, cg, gw[6 + q])
                _copy(taps[6 + q], cg, gw[9 + q])
            for a in range(4):
                # Then (G f) G^T, column by column in the same way.
                t0, t1, t2 = gw[3 * a], gw[3 * a + 1], gw[3 * a + 2]
                _copy(t0, cg, u[g, 4 * a, k - g * kg])
                _mix3(t0, t1, t2, 1, 0.5, cg, u[g, 4 * a + 1, k - g * kg])
                _mix3(t0, t1, t2, -1, 0.5, cg, u[g, 4 * a + 2, k - g * kg])
                _copy(t2, cg, u[g, 4 * a + 3, k - g * kg])


@loop_helper
def _copy(src, count, dst):
    for p in range(count):
        dst[p] = src[p]


@loop_helper
def _mix3(first, second, third, sign, factor, count, dst):
    """dst[p] = (first[p] + sign * second[p] + third[p]) * factor for p < count."""
    for p in range(count):
        dst[p] = (first[p] + sign * second[p] + third[p]) * factor


@loop_helper
def _padded_row(x_channel, source_row, colmap, left, fill, dst):
    """dst[p] = padded row[p] (source_row < 0: the fill value); columns past the padded width
    read the fill too. Returns sum of value * 0 over the image columns: NaN when one of them
    is NaN or infinite (no 'nnan'/'ninf' fast-math flag folds it away)."""
    width = dst.shape[0]
    padded_width = colmap.shape[0]
    check = dst.dtype.type(0)
    if source_row < 0:
        for p in range(width):
            dst[p] = fill
        return check
    row = x_channel[source_row]
    image_width = row.shape[0]
    hi = min(left + image_width, width)
    for p in range(min(left, width)):
        cm = colmap[p]
        dst[p] = row[cm] if cm >= 0 else fill
    body = dst[left:hi]
    src = row[:hi - left]
    for p in range(hi - left):
        value = src[p]
        body[p] = value
        check += value * 0
    for p in range(hi, min(padded_width, width)):
        cm = colmap[p]
        dst[p] = row[cm] if cm >= 0 else fill
    for p in range(max(hi, padded_width), width):
        dst[p] = fill
    return check


@loop_helper
def _combine(first, second, sign, count, dst):
    """dst[p] = first[p] + sign * second[p] for p < count. Every loop of the transforms writes
    one array and reads 1-D C-contiguous views: LLVM vectorises those (each more written array
    adds runtime alias checks, and a 2-D view has a runtime inner stride)."""
    for p in range(count):
        dst[p] = first[p] + sign * second[p]


@loop_helper
def _sum3(first, second, third, sign, count, dst):
    """dst[p] = first[p] + sign * (second[p] + third[p]) for p < count."""
    for p in range(count):
        dst[p] = first[p] + sign * (second[p] + third[p])


@loop_helper
def _split_columns(row, start, count, even, odd):
    """even[j] = row[start + 2j], odd[j] = row[start + 2j + 1] for j < count."""
    src = row[start:]
    for j in range(count):
        even[j] = src[2 * j]
        odd[j] = src[2 * j + 1]


@loop_helper
def _gather_pairs(x_channel, rowmap, colmap, left, fill, first_pair, pairs, p0, width,
                  row, parts):
    """The padded rows 2p and 2p + 1 for ``pairs`` pairs from ``first_pair``, columns p0 ..
    p0 + 2 * width, split by row and column parity: parts[2 * (row parity) + column parity]
    [q * width + j] = padded[2 * (first_pair + q) + row parity, p0 + 2j + column parity].
    Returns the non-finite check of the image samples read."""
    check = row.dtype.type(0)
    for q in range(pairs):
        for parity in range(2):
            padded = 2 * (first_pair + q) + parity
            source = rowmap[padded] if padded < rowmap.shape[0] else -1
            check += _padded_row(x_channel, source, colmap, left, fill, row)
            _split_columns(row, p0, width, parts[2 * parity, q * width:],
                           parts[2 * parity + 1, q * width:])
    # The spare tile of the last row reads one sample past the pairs: a defined zero, never
    # the buffer's stale bits (a subnormal there slowed the GEMMs 10x).
    for part in range(4):
        parts[part, pairs * width] = 0
    return check


@loop_helper
def _input_transform(parts, width, count, rows_bt, v, c, t0):
    """v[4a + b, c, t0 + x] = (B^T d B)[a, b] of the tile at flat position x < count (tile row
    x // width, column x % width) from the parity-split padded rows ``parts`` (see
    _gather_pairs): d's rows 0..3 are the even and odd rows of pair rows r and r + 1 (offset
    ``width``), its columns 0..3 the even and odd columns j and j + 1 (offset 1). The last
    column of each row is a spare tile whose values are not used."""
    n = count + 1
    ee, eo, oe, oo = parts[0], parts[1], parts[2], parts[3]
    # Rows of B^T d, per column parity: d0 - d2, d1 + d2, d2 - d1, d1 - d3.
    _combine(ee, ee[width:], -1, n, rows_bt[0])
    _combine(eo, eo[width:], -1, n, rows_bt[1])
    _combine(oe, ee[width:], 1, n, rows_bt[2])
    _combine(oo, eo[width:], 1, n, rows_bt[3])
    _combine(ee[width:], oe, -1, n, rows_bt[4])
    _combine(eo[width:], oo, -1, n, rows_bt[5])
    _combine(oe, oe[width:], -1, n, rows_bt[6])
    _combine(oo, oo[width:], -1, n, rows_bt[7])
    for a in range(4):
        even, odd = rows_bt[2 * a], rows_bt[2 * a + 1]
        # Columns of (B^T d) B: e0 - e2, e1 + e2, e2 - e1, e1 - e3.
        _combine(even, even[1:], -1, count, v[4 * a, c, t0:])
        _combine(odd, even[1:], 1, count, v[4 * a + 1, c, t0:])
        _combine(even[1:], odd, -1, count, v[4 * a + 2, c, t0:])
        _combine(odd, odd[1:], -1, count, v[4 * a + 3, c, t0:])


@loop_helper
def _inverse_transform(m, k, t0, count, sums):
    """sums[q] and sums[4 + q]: rows 0 and 1 of A^T M (column q) for the tiles t0 .. t0 + count
    of output channel k: m_q + m_(4+q) + m_(8+q) and m_(4+q) - m_(8+q) - m_(12+q)."""
    for q in range(4):
        _sum3(m[q, k, t0:], m[4 + q, k, t0:], m[8 + q, k, t0:], 1, count, sums[q])
        _sum3(m[4 + q, k, t0:], m[8 + q, k, t0:], m[12 + q, k, t0:], -1, count, sums[4 + q])


@loop_helper
def _write_tile_row(sums, x0, count, b, rows, plane, i0, q0, last_column):
    """Outputs of ``count`` tiles (flat positions x0 ..) of one tile row: (A^T M) A + bias into
    ``plane`` rows i0 .. i0 + rows (``rows`` is 1 on an odd last row) from column q0. The last
    tile of an odd-width output writes only its first column (``last_column``)."""
    full = count - 1 if last_column else count
    for r in range(rows):
        s0, s1 = sums[4 * r, x0:], sums[4 * r + 1, x0:]
        s2, s3 = sums[4 * r + 2, x0:], sums[4 * r + 3, x0:]
        y = plane[i0 + r, q0:]
        for j in range(full):
            y[2 * j] = s0[j] + s1[j] + s2[j] + b
            y[2 * j + 1] = s1[j] - s2[j] - s3[j] + b
        if full < count:
            y[2 * full] = s0[full] + s1[full] + s2[full] + b


@parallel_kernel
def correlate_winograd(x, u, bias, rowmap, colmap, left, fill, tile_rows, tile_cols, rows_buf,
                       parts_buf, scratch, v, m, args, scalars, trans, checks, out):
    """out[n, k, i, j] = bias[k] + sum over (c, p, q) of
    w[k, c, p, q] * xpad[n, g*Cg + c, i + p, j + q] for a 3x3, stride-1 layer, from
    u = transform_weights(w).

    Preconditions: arrays C-contiguous in one float dtype (``rowmap``/``colmap`` int64, ``args``
    (slots, 6) int32, ``scalars`` (slots, 2), ``trans`` = [ord('N')] uint8, ``fill`` 1 element).
    ``u`` (groups, 16, Kg, Cg). With W = tile_cols + 1 (a spare tile per row) and
    TB = tile_rows * W: ``rows_buf`` (slots, 2 * tiles_w + 2); ``parts_buf`` (slots, 4,
    (2 * tile_rows + 1) * W + 2); ``scratch`` (slots, 8, TB + 2); ``v`` (slots, 16, Cg, TB) and
    ``m`` (slots, 16, Kg, TB). Either tile_cols is the number of tile columns or tile_rows == 1.
    ``checks`` (slots,) gets NaN when the slot met a non-finite input sample.

    An item's tile rows run over images; each image's run of rows (a segment) is transformed
    with loops over the whole segment, its pair rows stored with one extra pair row.
    """
    n_images = x.shape[0]
    groups, _, kg, cg = u.shape
    ho, wo = out.shape[2], out.shape[3]
    tiles_h = (ho + 1) // 2
    tiles_w = (wo + 1) // 2
    row_blocks = (n_images * tiles_h + tile_rows - 1) // tile_rows
    col_blocks = (tiles_w + tile_cols - 1) // tile_cols
    n_items = groups * row_blocks * col_blocks
    slots = v.shape[0]
    ld = v.shape[3]
    fill_value = fill[0]
    for slot in prange(slots):
        row = rows_buf[slot]
        parts = parts_buf[slot]
        sums = scratch[slot]
        check = checks.dtype.type(0)
        for item in range(slot * n_items // slots, (slot + 1) * n_items // slots):
            g = item // (row_blocks * col_blocks)
            r0 = (item // col_blocks) % row_blocks * tile_rows
            j0 = item % col_blocks * tile_cols
            rows = min(tile_rows, n_images * tiles_h - r0)
            cols = min(tile_cols, tiles_w - j0)
            width = cols + 1
            for c in range(cg):
                r = 0
                while r < rows:
                    n = (r0 + r) // tiles_h
                    i = (r0 + r) % tiles_h
                    segment = min(rows - r, tiles_h - i)
                    check += _gather_pairs(x[n, g * cg + c], rowmap, colmap, left, fill_value,
                                           i, segment + 1, 2 * j0, width, row, parts)
                    _input_transform(parts, width, segment * width, sums, v[slot], c,
                                     r * width)
                    r += segment
            for xi in range(16):
                gemm(rows * width, kg, cg, v[slot, xi], ld, u[g, xi], cg, 0, m[slot, xi], ld,
                     args[slot], scalars[slot], trans)
            last_column = j0 + cols == tiles_w and wo % 2 == 1
            for k in range(kg):
                b = bias[g * kg + k]
                _inverse_transform(m[slot], k, 0, rows * width, sums)
                for r in range(rows):
                    n = (r0 + r) // tiles_h
                    i = (r0 + r) % tiles_h
                    _write_tile_row(sums, r * width, cols, b, min(2, ho - 2 * i),
                                    out[n, g * kg + k], 2 * i, 2 * j0, last_column)
        checks[slot] = check
