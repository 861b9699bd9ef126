"""im2col strategy: unfold input patches into a cache-resident column buffer, multiply it by the
weights with BLAS, accumulate straight into the NCHW output.

Layout of the work: a work item is (image, group, block of output rows, block of output columns,
block of output channels); each slot (one per thread) owns one column buffer and runs a
contiguous share of the items, calling a single-threaded BLAS. Per item the output tile is first
set to the bias (while it is cache-resident, so the bias costs no sweep of its own), then each
chunk of input channels is unfolded and added with GEMMs of beta = 1.

The buffer generalises im2col and MEC (Cho & Brand, ICML 2017). A *band* of ``band`` consecutive
kernel rows is unfolded: buffer row (c, b, q) holds, for every padded input row
``t * sh + ph + b * dh`` of the tile (stride phase ``ph``, index ``t``), the ``width`` samples
that kernel column q meets. With ``band == kh`` this is plain im2col and one GEMM per chunk
suffices. With ``band == 1`` the buffer is kh times smaller (each input row is copied kw times,
not kh * kw times) and kernel row p is a GEMM over a *shifted view* of it: the rows that p meets
are a contiguous run starting at phase ``(p * dh) % sh``, index ``(p * dh) // sh``.

BLAS ``?gemm`` runs in column-major terms: C (pixels x out-channels) += A (pixels x unfolded
rows: the buffer) @ B (unfolded rows x out-channels: the weights), so that C is the NCHW output
tile itself (leading dimension Ho * Wo) and no copy of the result is made.

Stride-1 float layers can instead run an implicit GEMM (correlate_implicit): no column buffer,
the micro-kernel of gemm.py reads a padded copy of the tile's input rows through a table of
offsets, one per kernel tap. Pointwise float layers run either BLAS on the input as it is
(correlate_pointwise) or the micro-kernel on a copy of a tile's pixels
(correlate_pointwise_implicit). Both micro-kernel paths read the weights packed by pack_panels.
"""

from numba import prange

from ...core.blas import gemm
from ...core.jit import inline_helper, loop_helper, parallel_kernel
from ...core.padding import pad_columns
from .gemm import micro_rows, microkernel, panel_elements

# Depth rows per work item of pack_panels (64 fp32 values: one cache line per channel read).
PACK_DEPTH = 64


@inline_helper
def _set_bias(out_flat, k0, count, p0, pixels, bias):
    """out_flat[k, p0:p0 + pixels] = bias[k] for channels k0 .. k0 + count: the tile is set while
    cache-resident and the GEMMs add to it, so the bias costs no sweep of its own."""
    for k in range(k0, k0 + count):
        row = out_flat[k, p0:p0 + pixels]
        b = bias[k]
        for p in range(pixels):
            row[p] = b


@inline_helper
def _copy_borders(xrow, colmap, start, lo, hi, width, fill, dst):
    """The padding columns j < lo and hi <= j < width of dst = padded row[start:]."""
    for j in range(lo):
        cm = colmap[start + j]
        dst[j] = xrow[cm] if cm >= 0 else fill
    for j in range(hi, width):
        cm = colmap[start + j]
        dst[j] = xrow[cm] if cm >= 0 else fill


@inline_helper
def _copy_row(xrow, colmap, start, off, lo, hi, width, fill, dst):
    """dst[j] = padded row[start + j] for j < width (stride 1). Columns lo..hi are inside the
    image (source column j + off): one contiguous copy; the others go through the index map."""
    src = xrow[lo + off:hi + off]
    body = dst[lo:hi]
    for j in range(hi - lo):
        body[j] = src[j]
    _copy_borders(xrow, colmap, start, lo, hi, width, fill, dst)


@inline_helper
def _copy_padding_row(xc, src_row, colmap, start, off, lo, hi, width, fill, dst):
    """A row of the vertical padding: the fill value, or the image row the index map names."""
    if src_row < 0:
        for j in range(width):
            dst[j] = fill
    else:
        _copy_row(xc[src_row], colmap, start, off, lo, hi, width, fill, dst)


@inline_helper
def _unfold_block(xc, xflat, rowmap, colmap, fill, rbase, sh, t_lo, t_hi, t_end, first, start,
                  off, lo, hi, width, bulk, block, block_flat):
    """block[t, j] = padded image[rbase + t * sh, start + j] for t < t_end, j < width (stride 1
    in width). Rows t_lo..t_hi are inside the image (image row first + (t - t_lo) * sh), columns
    lo..hi too (image column j + off).

    Interior rows copy their interior columns contiguously. With ``bulk`` (consecutive rows
    adjacent both in the image and in the block: row stride 1, rows as wide as the image) the
    whole interior run is one copy, and only the padding columns are patched afterwards.
    """
    for t in range(t_lo):
        _copy_padding_row(xc, rowmap[rbase + t * sh], colmap, start, off, lo, hi, width, fill,
                          block[t])
    for t in range(t_hi, t_end):
        _copy_padding_row(xc, rowmap[rbase + t * sh], colmap, start, off, lo, hi, width, fill,
                          block[t])
    if bulk and t_hi > t_lo:
        src = xflat[first * width + lo + off:]
        dst = block_flat[t_lo * width + lo:(t_hi - 1) * width + hi]
        for j in range(dst.shape[0]):
            dst[j] = src[j]
        if lo > 0 or hi < width:
            for t in range(t_lo, t_hi):
                _copy_borders(xc[first + t - t_lo], colmap, start, lo, hi, width, fill, block[t])
    else:
        for t in range(t_lo, t_hi):
            _copy_row(xc[first + (t - t_lo) * sh], colmap, start, off, lo, hi, width, fill,
                      block[t])


@inline_helper
def _deinterleave(xrow, colmap, left, start, sw, fill, phases):
    """phases[ph, t] = padded row[start + t * sw + ph]: columns split by stride phase, so that
    the unfold copies of a strided layer are contiguous."""
    padded_width = colmap.shape[0]
    image_width = xrow.shape[0]
    wq = phases.shape[1]
    for ph in range(sw):
        dst = phases[ph]
        m0 = start + ph
        t_end = min(max(-((m0 - padded_width) // sw), 0), wq)
        t_lo = min(max(-((m0 - left) // sw), 0), t_end)
        t_hi = min(max(-((m0 - left - image_width) // sw), t_lo), t_end)
        for t in range(t_lo):
            cm = colmap[m0 + t * sw]
            dst[t] = xrow[cm] if cm >= 0 else fill
        src = xrow[m0 + t_lo * sw - left::sw]
        body = dst[t_lo:t_hi]
        for t in range(t_hi - t_lo):
            body[t] = src[t]
        for t in range(t_hi, t_end):
            cm = colmap[m0 + t * sw]
            dst[t] = xrow[cm] if cm >= 0 else fill


@loop_helper
def _unfold(x, n, c_first, channels, rowmap, colmap, top, left, fill, sh, sw, dh, dw, kw, band,
            row0, n_t, j0, width, cols, phases):
    """Fill the column buffer for channels ``c_first .. c_first + channels`` of image n.

    ``cols`` is (rows, n_ph, >= n_t, >= width): row (c, b, q), phase ph, index t < n_t holds
    padded input row ``row0 + t * sh + ph + b * dh`` at padded columns ``(j0 + j) * sw + q * dw``
    for j < width. Rows past the padded input are never read by a GEMM and are left as they are.

    Stride 1 in width: per (c, b, q) a block of row copies. Strided: each padded input row is
    split by column phase once, then copied to every (b, t) that reads it.
    """
    padded_height = rowmap.shape[0]
    height, image_width = x.shape[2], x.shape[3]
    n_ph, n_t_max, tile_width = cols.shape[1], cols.shape[2], cols.shape[3]
    if sw == 1:
        planes = x[n].reshape(x.shape[1], height * image_width)
        blocks = cols.reshape(cols.shape[0], n_ph, n_t_max * tile_width)
        bulk = sh == 1 and width == image_width == tile_width
        for b in range(band):
            for ph in range(n_ph):
                rbase = row0 + ph + b * dh
                t_end = min(max(-((rbase - padded_height) // sh), 0), n_t)
                t_lo = min(max(-((rbase - top) // sh), 0), t_end)
                t_hi = min(max(-((rbase - top - height) // sh), t_lo), t_end)
                first = rbase + t_lo * sh - top
                for q in range(kw):
                    start = j0 + q * dw
                    off = start - left
                    lo = min(max(-off, 0), width)
                    hi = max(min(image_width - off, width), lo)
                    for c in range(channels):
                        row = (c * band + b) * kw + q
                        _unfold_block(x[n, c_first + c], planes[c_first + c], rowmap, colmap,
                                      fill, rbase, sh, t_lo, t_hi, t_end, first, start, off, lo,
                                      hi, width, bulk, cols[row, ph], blocks[row, ph])
        return
    for c in range(channels):
        xc = x[n, c_first + c]
        span = min((n_t - 1) * sh + n_ph + (band - 1) * dh, padded_height - row0)
        for r in range(span):
            src_row = rowmap[row0 + r]
            if src_row >= 0:
                _deinterleave(xc[src_row], colmap, left, j0 * sw, sw, fill, phases)
            for b in range(band):
                for ph in range(n_ph):
                    rel = r - ph - b * dh
                    t = rel // sh
                    if rel < 0 or rel % sh or t >= n_t:
                        continue
                    for q in range(kw):
                        dst = cols[(c * band + b) * kw + q, ph, t]
                        if src_row < 0:
                            for j in range(width):
                                dst[j] = fill
                        else:
                            shift = q * dw
                            src = phases[shift % sw, shift // sw:shift // sw + width]
                            for j in range(width):
                                dst[j] = src[j]


@parallel_kernel
def correlate_unfolded(x, wm, bias, rowmap, colmap, top, left, fill, sh, sw, dh, dw, kw, band,
                       groups, chunk, tile_rows, tile_width, k_block, cols, phases, args, scalars,
                       trans, out):
    """out[n, k, i, j] = bias[k] + sum over (c, p, q) of
    w[k, c, p, q] * xpad[n, g*Cg + c, i*sh + p*dh, j*sw + q*dw], with g the group of k.

    Preconditions: arrays C-contiguous, one float or complex dtype (``rowmap``/``colmap`` int64,
    ``args`` int32, ``trans`` = [ord('N')] uint8, ``fill`` a 1-element array). ``wm`` is
    (kh // band, K, Cg * band * kw): ``wm[m, k, (c, b, q)] = w[k, c, m * band + b, q]``.
    ``cols`` is (slots, chunk * band * kw, n_ph, n_t, tile_width) with n_ph = sh if band < kh
    else 1 and n_t = tile_rows + ((kh - band) * dh) // sh; ``phases`` (slots, sw, Wq) with
    Wq >= tile_width + ((kw - 1) * dw) // sw; ``args`` (slots, 6), ``scalars`` (slots, 2).
    Either tile_width == Wo or tile_rows == 1 (the pixels of a tile are contiguous in ``out``).
    Items split a group's output channels in blocks of ``k_block``; a slot that runs several
    blocks of one tile in a row unfolds it once (when one chunk holds all input channels).
    """
    n_images, channels = x.shape[0], x.shape[1]
    n_bands, k_total, kc_full = wm.shape
    kh = n_bands * band
    cg = channels // groups
    kg = k_total // groups
    ho, wo = out.shape[2], out.shape[3]
    n_ph, n_t_max = cols.shape[2], cols.shape[3]
    lda = n_ph * n_t_max * tile_width
    row_blocks = (ho + tile_rows - 1) // tile_rows
    col_blocks = (wo + tile_width - 1) // tile_width
    k_blocks = (kg + k_block - 1) // k_block
    tiles = row_blocks * col_blocks
    n_items = n_images * groups * tiles * k_blocks
    slots = cols.shape[0]
    fill_value = fill[0]
    for slot in prange(slots):
        buf = cols[slot]
        first_item = slot * n_items // slots
        for item in range(first_item, (slot + 1) * n_items // slots):
            tile = item // k_blocks
            n = tile // (groups * tiles)
            g = (tile // tiles) % groups
            i0 = (tile % tiles) // col_blocks * tile_rows
            j0 = (tile % col_blocks) * tile_width
            k0 = g * kg + (item % k_blocks) * k_block
            kb = min(k_block, (g + 1) * kg - k0)
            rows = min(tile_rows, ho - i0)
            width = min(tile_width, wo - j0)
            pixels = rows * width
            out_flat = out[n].reshape(k_total, ho * wo)
            p0 = i0 * wo + j0
            _set_bias(out_flat, k0, kb, p0, pixels, bias)
            n_t = rows + ((kh - band) * dh) // sh
            unfolded = item > first_item and item % k_blocks > 0 and chunk == cg
            for c0 in range(0, cg, chunk):
                cc = min(chunk, cg - c0)
                if not unfolded:
                    _unfold(x, n, g * cg + c0, cc, rowmap, colmap, top, left, fill_value, sh, sw,
                            dh, dw, kw, band, i0 * sh, n_t, j0, width, buf, phases[slot])
                for m in range(n_bands):
                    shift = m * band * dh
                    a = buf[0, shift % sh if n_ph > 1 else 0, shift // sh:]
                    gemm(pixels, kb, cc * band * kw, a, lda, wm[m, k0, c0 * band * kw:], kc_full,
                         1, out_flat[k0, p0:], ho * wo, args[slot], scalars[slot], trans)


@inline_helper
def _fill_strip(xn, c_first, channels, rowmap, colmap, left, fill, row0, n_t, plane, row_stride,
                strip):
    """strip[c * plane + t * S + j] = padded image xn[c_first + c] at padded row row0 + t,
    padded column j, for c < channels, t < n_t, j < S = ``row_stride``.

    S is less than the padded width only with a constant fill (correlate_implicit): a row's
    right padding is then read from the left padding of the strip's next row, which holds the
    fill whatever row it was last written with.

    A plain copy of padded rows, two slices per row: _unfold (kw = 1, the padded width as the
    window) did the same in 1.2 ms against 1.1 ms here, of ~12 ms on 64->64 3x3 fp32.
    """
    height, width = xn.shape[1], xn.shape[2]
    flat = xn.reshape(xn.size)
    for c in range(channels):
        source = (c_first + c) * height * width
        for t in range(n_t):
            row = strip[c * plane + t * row_stride:c * plane + (t + 1) * row_stride]
            image_row = rowmap[row0 + t]
            if image_row < 0:
                for j in range(row_stride):
                    row[j] = fill
                continue
            src = flat[source + image_row * width:source + (image_row + 1) * width]
            body = row[left:left + width]
            for j in range(width):
                body[j] = src[j]
            pad_columns(row, src, left, colmap, fill)


@parallel_kernel
def pack_panels(w, groups, packed):
    """packed[g, m, d, p] = w[g * Kg + m * P + p, d], zero where m * P + p >= Kg: the weights as
    gemm.microkernel reads them, panels of P output channels, [depth][channel] within each.

    Preconditions: ``w`` (K, D) and ``packed`` (groups, ceil(Kg / P), D, P), C-contiguous, one
    dtype. Items of PACK_DEPTH depth rows of a panel: each reads PACK_DEPTH contiguous values of
    the panel's channels and writes a block of whole panel rows, both within L1. NumPy's strided
    copy of the same transposition took 1.0-1.2 ms for 512 x 2048 fp32 weights, this kernel on
    two threads 0.5-0.6 ms.
    """
    k_total, depth = w.shape
    n_panels, panel = packed.shape[1], packed.shape[3]
    kg = k_total // groups
    blocks = (depth + PACK_DEPTH - 1) // PACK_DEPTH
    for item in prange(groups * n_panels * blocks):
        g = item // (n_panels * blocks)
        m = (item // blocks) % n_panels
        d0 = (item % blocks) * PACK_DEPTH
        d1 = min(depth, d0 + PACK_DEPTH)
        _pack_panel(w, g * kg + m * panel, min(panel, kg - m * panel), d0, d1, 0,
                    packed[g, m])


@inline_helper
def _pack_panel(source, first, count, d0, d1, shift, panel):
    """panel[d - shift, p] = source[first + p, d] for d0 <= d < d1 and p < count, zero for
    count <= p < P (output channels past the group's): one panel of P output channels,
    [depth][channel], as gemm.microkernel reads it."""
    width = panel.shape[1]
    for p in range(count):
        row = source[first + p]
        for d in range(d0, d1):
            panel[d - shift, p] = row[d]
    for d in range(d0, d1):
        for p in range(count, width):
            panel[d - shift, p] = 0


@inline_helper
def _micro_item(item, k_blocks, k_block, blocks, groups, kg, images, weights_major):
    """(image, group, block of the image, first channel of the group's block, its first output
    channel, channels in it) of a micro-kernel work item. Items run over (image, group, block)
    and, innermost, blocks of ``k_block`` of the group's ``kg`` output channels, so that the
    items of one block share its strip; or, ``weights_major``, over (group, channel block) and,
    innermost, (image, block), so that a thread's items share one block of weights."""
    if weights_major:
        outer = item // (images * blocks)
        inner = item % (images * blocks)
        g = outer // k_blocks
        kk = (outer % k_blocks) * k_block
        n, block = inner // blocks, inner % blocks
    else:
        tile = item // k_blocks
        kk = (item % k_blocks) * k_block
        g = (tile // blocks) % groups
        n, block = tile // (groups * blocks), tile % blocks
    return n, g, block, kk, g * kg + kk, min(k_block, kg - kk)


@parallel_kernel
def correlate_implicit(x, wpack, bias, offsets, rowmap, colmap, left, row_stride, fill, dh, kh, kw,
                       groups, chunk, tile_rows, k_block, weights_major, depth_block, strips,
                       tiles, out):
    """correlate_unfolded's result for stride 1, without a column buffer: an implicit GEMM.

    Per work item (image, group, ``tile_rows`` output rows, ``k_block`` output channels) and
    chunk of input channels, the padded input rows that the tile reads are copied once into a
    *strip* (channel c at ``c * plane``, padded row t at ``t * S``, S = ``row_stride``,
    plane = (tile_rows + (kh - 1) * dh) * S; _fill_strip). Numbering the tile's pixels along
    the strip's rows, u = i * S + j, unfolded row d = (c, p, q) of pixel u is
    strip[offsets[d] + u] with offsets[d] = c * plane + p * dh * S + q * dw, so
    gemm.microkernel reads the strip as it is. The S - Wo pixels u of each row past the output
    width are computed and dropped: S is at least Wo, and at most the padded width, less with a
    constant fill (the rows share their padding). The micro-kernel accumulates a (pixels,
    channels) tile (its first depth block stores); adding the bias, it is transposed into the
    NCHW output at the end. Items follow _micro_item's order: the items of one tile share its
    strip, or, ``weights_major``, a thread's items share their weights (the strip is then
    filled for every item).

    Preconditions: stride 1; arrays C-contiguous, float32 or float64 (maps int64, ``fill`` a
    1-element array). ``wpack`` (groups, Kgp * Cg * kh * kw), Kgp = Kg rounded up to the panel
    width P = gemm.panel_width: panel m of the group's channels at m * P * Cg * kh * kw,
    [d][k] within it (zeros past Kg). ``k_block`` a multiple of P or Kg. ``offsets`` int64
    (chunk * kh * kw,). ``strips`` (slots, chunk * plane + (kw - 1) * dw + R), R the pixels per
    micro-kernel call (gemm.tile_rows), set to ``fill``: the last row's right padding (S short
    of the padded width) and dropped pixels read its tail; ``tiles`` (slots, U, Kbp) with
    U >= tile_rows * S rounded up to R and Kbp = k_block rounded up to P.
    """
    n_images, channels = x.shape[0], x.shape[1]
    k_total = out.shape[1]
    cg = channels // groups
    kg = k_total // groups
    ho, wo = out.shape[2], out.shape[3]
    depth_total = cg * kh * kw
    width = panel_elements(wpack)
    rows_per_call = micro_rows(wpack)
    n_t_max = tile_rows + (kh - 1) * dh
    plane = n_t_max * row_stride
    row_blocks = (ho + tile_rows - 1) // tile_rows
    k_blocks = (kg + k_block - 1) // k_block
    n_items = n_images * groups * row_blocks * k_blocks
    slots = strips.shape[0]
    ldc = tiles.shape[2]
    fill_value = fill[0]
    for slot in prange(slots):
        strip = strips[slot]
        tile = tiles[slot]
        tile_flat = tile.reshape(tile.size)
        first_item = slot * n_items // slots
        for item in range(first_item, (slot + 1) * n_items // slots):
            n, g, row_block, kk, k0, kb = _micro_item(item, k_blocks, k_block, row_blocks,
                                                      groups, kg, n_images, weights_major)
            i0 = row_block * tile_rows
            rows = min(tile_rows, ho - i0)
            pixels = rows * row_stride
            unfolded = (not weights_major and item > first_item and item % k_blocks > 0
                        and chunk == cg)
            for c0 in range(0, cg, chunk):
                cc = min(chunk, cg - c0)
                if not unfolded:
                    _fill_strip(x[n], g * cg + c0, cc, rowmap, colmap, left, fill_value, i0,
                                rows + (kh - 1) * dh, plane, row_stride, strip)
                depth = cc * kh * kw
                for d0 in range(0, depth, depth_block):
                    dc = min(depth_block, depth - d0)
                    for m in range(0, kb, width):
                        w_offset = (kk + m) * depth_total + (c0 * kh * kw + d0) * width
                        for u0 in range(0, pixels, rows_per_call):
                            microkernel(dc, wpack[g], w_offset, strip, u0, offsets, d0,
                                        tile_flat, u0 * ldc + m, ldc, c0 + d0 > 0)
            # Row by row, so that the tile's lines of one output row stay in L1 while every
            # channel reads them: channel-outer re-read the whole tile from L2 per channel (with
            # a zeroing pass of the tile, 1.9 ms; without it and row by row, 1.2 ms).
            for i in range(rows):
                src = tile[i * row_stride:]
                for k in range(kb):
                    dst = out[n, k0 + k, i0 + i]
                    b = bias[k0 + k]
                    for j in range(wo):
                        dst[j] = src[j, k] + b


@parallel_kernel
def correlate_pointwise_implicit(x, wpack, bias, offsets, groups, tile, k_block, depth_block,
                                 strips, tiles, out):
    """correlate_pointwise's result through gemm.microkernel instead of BLAS.

    Per work item (image, group, ``tile`` pixels, ``k_block`` output channels) the item's pixels
    of the group's input channels are copied into a *strip*, channel c at ``offsets[c]`` = c
    times a stride of an odd number of cache lines. Read in place, the channel rows of a 56x56
    fp32 image are 196 lines apart, which maps them to 16 of the 64 L1 sets, while the
    micro-kernel reads one line per row and step (256->64 on 56x56 fp32: 75-86 GF/s in place,
    140-230 GF/s from the strip). The strip is kept for the items of the same
    pixels that follow. The micro-kernel accumulates a (pixels, channels) tile (its first depth
    block stores), transposed into the output with the bias.

    Preconditions: ``x`` (N, C, P) and ``out`` (N, K, P) with P = H * W, C-contiguous, float32
    or float64; ``wpack`` as correlate_implicit's (kh = kw = 1); ``k_block`` a multiple of the
    panel width P = gemm.panel_width; ``offsets`` int64 (C / groups,) as above, with stride
    >= ``tile`` rounded up to R (gemm.tile_rows); ``strips`` (slots, C / groups * stride),
    ``tiles`` (slots, U, k_block) with U = ``tile`` rounded up to R.
    """
    n_images, channels, pixels_total = x.shape
    k_total = out.shape[1]
    cg = channels // groups
    kg = k_total // groups
    width = panel_elements(wpack)
    rows_per_call = micro_rows(wpack)
    blocks = (pixels_total + tile - 1) // tile
    k_blocks = (kg + k_block - 1) // k_block
    n_items = n_images * groups * blocks * k_blocks
    slots = tiles.shape[0]
    ldc = tiles.shape[2]
    for slot in prange(slots):
        strip = strips[slot]
        tile_buf = tiles[slot]
        tile_flat = tile_buf.reshape(tile_buf.size)
        first_item = slot * n_items // slots
        for item in range(first_item, (slot + 1) * n_items // slots):
            n, g, pixel_block, kk, k0, kb = _micro_item(item, k_blocks, k_block, blocks, groups,
                                                        kg, n_images, False)
            p0 = pixel_block * tile
            pixels = min(tile, pixels_total - p0)
            if item == first_item or item % k_blocks == 0:
                for c in range(cg):
                    src = x[n, g * cg + c, p0:p0 + pixels]
                    dst = strip[offsets[c]:offsets[c] + pixels]
                    for j in range(pixels):
                        dst[j] = src[j]
            for d0 in range(0, cg, depth_block):
                dc = min(depth_block, cg - d0)
                for m in range(0, kb, width):
                    w_offset = (kk + m) * cg + d0 * width
                    for u0 in range(0, pixels, rows_per_call):
                        microkernel(dc, wpack[g], w_offset, strip, u0, offsets, d0, tile_flat,
                                    u0 * ldc + m, ldc, d0 > 0)
            for k in range(kb):
                dst = out[n, k0 + k, p0:p0 + pixels]
                b = bias[k0 + k]
                for j in range(pixels):
                    dst[j] = tile_buf[j, k] + b


@parallel_kernel
def correlate_pointwise(x, w, bias, groups, chunk, tile, k_block, args, scalars, trans, out):
    """out[n, k] = bias[k] + sum over c of w[k, c] * x[n, g*Cg + c]: a 1x1, stride-1, unpadded
    layer is a GEMM on the input as it is (no unfold), ``chunk`` input channels per GEMM.

    Preconditions: ``x`` (N, C, P) and ``out`` (N, K, P) with P = H * W, ``w`` (K, C/groups);
    C-contiguous, one float or complex dtype; ``args`` (slots, 6) int32, ``scalars`` (slots, 2),
    ``trans`` = [ord('N')] uint8. Items are (image, group, ``tile`` pixels, ``k_block`` output
    channels).
    """
    n_images, channels, pixels_total = x.shape
    k_total, cg = w.shape
    kg = k_total // groups
    blocks = (pixels_total + tile - 1) // tile
    k_blocks = (kg + k_block - 1) // k_block
    n_items = n_images * groups * blocks * k_blocks
    slots = args.shape[0]
    for slot in prange(slots):
        for item in range(slot * n_items // slots, (slot + 1) * n_items // slots):
            block = item // k_blocks
            n = block // (groups * blocks)
            g = (block // blocks) % groups
            p0 = (block % blocks) * tile
            pixels = min(tile, pixels_total - p0)
            k0 = g * kg + (item % k_blocks) * k_block
            kb = min(k_block, (g + 1) * kg - k0)
            _set_bias(out[n], k0, kb, p0, pixels, bias)
            for c0 in range(0, cg, chunk):
                gemm(pixels, kb, min(chunk, cg - c0), x[n, g * cg + c0, p0:], pixels_total,
                     w[k0, c0:], cg, 1, out[n, k0, p0:], pixels_total, args[slot], scalars[slot],
                     trans)


@parallel_kernel
def weight_gradient_gemm(x, gy, offsets, tap_offsets, plane, channel_step, depth_block,
                         accumulate, panels, out):
    """out[g, t, r, k] = sum over images n and pixels d of
    x[n * plane + g * channel_step + tap_offsets[t] + offsets[d] + r] * gy[n, g * Kg + k, d]
    (``accumulate``: added to ``out``): a convolution's weight gradient as one GEMM whose
    reduction runs over the batch and the output pixels, through gemm.microkernel. ``x`` is the
    padded input channels-last, so that the micro-kernel's rows r are consecutive input
    channels (and kernel columns, at column dilation 1 without groups) of one input pixel, read
    in place: no column matrix.

    Preconditions: ``x`` 1-D, float32 or float64, N * ``plane`` values and at least R more (the
    last row block reads past its run; those rows are dropped); ``gy`` (N, G * Kg, D) of the
    same dtype; ``offsets`` int64 (D,), ``tap_offsets`` int64 (T,); ``out`` (G, T, R, Kgp), R a
    multiple of gemm.tile_rows, Kgp of the panel width P; ``panels`` (slots, G, Kgp / P,
    ``depth_block``, P). Items (g, t, block of rows, panel) are split evenly over the slots;
    each slot runs every image and block of ``depth_block`` pixels over its items, having
    packed that block of grad_output into its panels (zeros past Kg) first: the block is read
    from grad_output once per slot and its packed panels stay in cache while the items read
    them (packing all of grad_output beforehand wrote and re-read a copy of it in memory).
    """
    groups, taps, rows_total, kgp = out.shape
    width = panel_elements(panels)
    rows = micro_rows(panels)
    row_blocks = rows_total // rows
    n_panels = kgp // width
    n_items = groups * taps * row_blocks * n_panels
    images = gy.shape[0]
    kg = gy.shape[1] // groups
    pixels = offsets.shape[0]
    slots = panels.shape[0]
    out_flat = out.reshape(out.size)
    for slot in prange(slots):
        first = slot * n_items // slots
        last = (slot + 1) * n_items // slots
        packed = panels[slot]
        for n in range(images):
            for d0 in range(0, pixels, depth_block):
                dc = min(depth_block, pixels - d0)
                for g in range(groups):
                    for m in range(n_panels):
                        _pack_panel(gy[n], g * kg + m * width, min(width, kg - m * width), d0,
                                    d0 + dc, d0, packed[g, m])
                stores = not accumulate and n == 0 and d0 == 0
                for item in range(first, last):
                    m = item % n_panels
                    rest = item // n_panels
                    r0 = rest % row_blocks * rows
                    t = rest // row_blocks % taps
                    g = rest // (row_blocks * taps)
                    microkernel(dc, packed[g, m].reshape(packed[g, m].size), 0, x,
                                n * plane + g * channel_step + tap_offsets[t] + r0, offsets, d0,
                                out_flat, ((g * taps + t) * rows_total + r0) * kgp + m * width,
                                kgp, not stores)
