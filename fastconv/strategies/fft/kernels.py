"""FFT strategy: overlap-save cross-correlation of real tiles, fused in one parallel item.

One parallel item is (block of images, output tile). It gathers each input channel's padded tile
(padding applied through index maps, as in the direct kernel), transforms it, forms every output
channel's spectrum as the sum over the group's input channels of kernel spectrum times input
spectrum (a small complex GEMM per frequency bin), transforms back only the tile rows that hold
valid outputs, and writes them with the stride applied. Everything an item touches stays in its
own buffers, which the runner sizes to fit the L2 cache and the workspace budget.

The transforms are DUCC0's (the library behind ``scipy.fft``), called from inside the kernel
through rocket-fft. Measured on the reference machine, 1 thread, fp32 rfft2 + irfft2 of one
256x256 tile: 2.9 ns per point inside the fused kernel vs 5-8 ns per point through
``scipy.fft`` (per-call overhead and a baseline-SSE build) and 9-10 ns for batched ``scipy.fft``
calls whose tiles no longer fit in L2.

Inputs are real: the runner splits complex problems into (real, imaginary) channel pairs, which
``parts`` = 2 describes (see ``correlate_tiles``).
"""

import numpy as np
from numba import prange
from rocket_fft import c2c, c2r, r2c

from ...core.jit import loop_helper, parallel_kernel

# Transform axes of a (rows, columns) tile: along each row, then along each column.
_ALONG_ROWS = np.array([1], np.int64)
_ALONG_COLUMNS = np.array([0], np.int64)
# Frequency bins per block of the channel sums: a block of every spectrum of an item stays in L2
# (256 bins measured 20 GF/s for complex64 on 16x16 channels; 64 bins: 12 GF/s, 512: 20 GF/s).
_BIN_BLOCK = 256


@parallel_kernel
def kernel_spectra(w, dh, dw, lw, fct, spectra):
    """spectra[k, c] = fct * conj(DFT2(w[k, c] dilated by (dh, dw), zero-padded to (lh, lw))).

    Preconditions: ``w`` (K, Cg, kh, kw) real and finite; ``spectra`` (K, Cg, lh, lw // 2 + 1) of
    the matching complex dtype; the dilated kernel fits in (lh, lw).
    """
    k_total, cg, kh, kw = w.shape
    lh = spectra.shape[2]
    for item in prange(k_total * cg):
        k = item // cg
        c = item % cg
        tile = np.zeros((lh, lw), w.dtype)
        for p in range(kh):
            for q in range(kw):
                tile[p * dh, q * dw] = w[k, c, p, q]
        # The backward (positive-exponent) transform of a real kernel is the conjugate of its DFT.
        r2c(tile, spectra[k, c], _ALONG_ROWS, False, fct, 1)
        c2c(spectra[k, c], spectra[k, c], _ALONG_COLUMNS, False, 1.0, 1)


@loop_helper
def _gather(x, n, channel, parts, rowmap, colmap, left, width, fill, r0, c0, rows, tile):
    """Copy padded rows ``r0 ..`` and columns ``c0 ..`` of one input channel into ``tile``.

    Channel ``channel`` is part ``channel % parts`` of x's channel ``channel // parts``: x's last
    axis holds ``parts`` interleaved values per column. Only the first ``rows`` tile rows are
    written; columns past the padded input are zero. Non-finite samples are written as zero and
    counted: the count is returned.
    """
    lw = tile.shape[1]
    c = channel // parts
    part = channel - c * parts
    fill_value = fill[part]
    cols = min(lw, colmap.shape[0] - c0)
    lo = min(max(left - c0, 0), cols)
    hi = min(max(left + width - c0, 0), cols)
    bad = 0
    for r in range(rows):
        trow = tile[r]
        src = rowmap[r0 + r]
        if src < 0:
            for s in range(cols):
                trow[s] = fill_value
        else:
            xrow = x[n, c, src]
            for s in range(lo):
                cm = colmap[c0 + s]
                trow[s] = xrow[cm * parts + part] if cm >= 0 else fill_value
            if parts == 1:
                body = xrow[c0 + lo - left:c0 + hi - left]
                inner = trow[lo:hi]
                for s in range(hi - lo):
                    inner[s] = body[s]
            else:
                base = (c0 - left) * parts + part
                for s in range(lo, hi):
                    trow[s] = xrow[base + s * parts]
            for s in range(hi, cols):
                cm = colmap[c0 + s]
                trow[s] = xrow[cm * parts + part] if cm >= 0 else fill_value
        for s in range(cols, lw):
            trow[s] = 0
        # v * 0 is 0 for finite v and NaN otherwise: one vectorised pass detects a bad sample.
        probe = trow[0] * 0
        for s in range(1, cols):
            probe += trow[s] * 0
        if probe != 0:
            for s in range(cols):
                if not np.isfinite(trow[s]):
                    trow[s] = 0
                    bad += 1
    return bad


@loop_helper
def _channel_sums(spectra, xs, group, ys):
    """ys[n, kl] = sum over c of spectra[group * Kg + kl, c] * xs[n, group * Cg + c] (per bin).

    ``spectra`` (K, Cg, bins), ``xs`` (nb, C, bins), ``ys`` (nb, Kg, bins). Four channels per pass
    over a block of bins, so each output bin is loaded and stored once per four products.
    """
    cg = spectra.shape[1]
    kg = ys.shape[1]
    bins = ys.shape[2]
    c_first = group * cg
    for b0 in range(0, bins, _BIN_BLOCK):
        b1 = min(b0 + _BIN_BLOCK, bins)
        m = b1 - b0
        for kl in range(kg):
            wk = spectra[group * kg + kl]
            for n in range(ys.shape[0]):
                y = ys[n, kl, b0:b1]
                x0 = xs[n, c_first, b0:b1]
                w0 = wk[0, b0:b1]
                for b in range(m):
                    y[b] = w0[b] * x0[b]
                c = 1
                while c + 4 <= cg:
                    w0 = wk[c, b0:b1]
                    w1 = wk[c + 1, b0:b1]
                    w2 = wk[c + 2, b0:b1]
                    w3 = wk[c + 3, b0:b1]
                    x0 = xs[n, c_first + c, b0:b1]
                    x1 = xs[n, c_first + c + 1, b0:b1]
                    x2 = xs[n, c_first + c + 2, b0:b1]
                    x3 = xs[n, c_first + c + 3, b0:b1]
                    for b in range(m):
                        y[b] += w0[b] * x0[b] + w1[b] * x1[b] + w2[b] * x2[b] + w3[b] * x3[b]
                    c += 4
                while c < cg:
                    w0 = wk[c, b0:b1]
                    x0 = xs[n, c_first + c, b0:b1]
                    for b in range(m):
                        y[b] += w0[b] * x0[b]
                    c += 1


@loop_helper
def _scatter(tile, out, n, channel, parts, r0, c0, rows, cols, sh, sw, bias, round_out):
    """Write the valid stride-1 tile outputs (``rows`` x ``cols`` from the tile origin, whose
    top-left is stride-1 output (r0, c0)) that the stride keeps, plus ``bias``, into ``out``."""
    k = channel // parts
    part = channel - k * parts
    wo = out.shape[3] // parts
    i_lo = (r0 + sh - 1) // sh
    i_hi = min((r0 + rows + sh - 1) // sh, out.shape[2])
    j_lo = (c0 + sw - 1) // sw
    j_hi = min((c0 + cols + sw - 1) // sw, wo)
    for i in range(i_lo, i_hi):
        trow = tile[i * sh - r0]
        orow = out[n, k, i]
        if parts == 1 and sw == 1 and not round_out:
            seg = orow[j_lo:j_hi]
            src = trow[j_lo - c0:j_hi - c0]
            for j in range(j_hi - j_lo):
                seg[j] = src[j] + bias
        else:
            for j in range(j_lo, j_hi):
                value = trow[j * sw - c0] + bias
                if round_out:
                    value = np.rint(value)
                orow[j * parts + part] = value


@parallel_kernel
def correlate_tiles(x, spectra, bias, rowmap, colmap, left, width, fill, parts, groups, lw,
                    vh, vw, sh, sw, images_per_item, round_out, out, bad):
    """Overlap-save correlation: out = bias + sum over c of xpad[c] correlated with w[c].

    ``x`` (N, C, H, W * parts) holds ``parts`` interleaved real values per sample (2 for complex
    data split into real and imaginary channels): real channel ``c'`` is part ``c' % parts`` of
    channel ``c' // parts``; ``out`` (N, K, Ho, Wo * parts) likewise. ``spectra`` (K * parts,
    C * parts / groups, lh, lw // 2 + 1) comes from ``kernel_spectra`` with fct 1 / (lh * lw).
    ``rowmap``/``colmap`` map padded rows/columns to source indices (-1: ``fill[part]``); ``left``
    is the left padding and ``width`` the input width. A tile covers stride-1 outputs
    [vh * ti, vh * (ti + 1)) x [vw * tj, vw * (tj + 1)); (lh, lw) must be at least the dilated
    kernel extent plus (vh - 1, vw - 1), unless the rows or columns beyond it are zero padding
    whose circular wrap stays in zero padding (the runner checks this). ``round_out`` rounds to
    the nearest integer before storing (integer outputs). ``bad`` (items,) receives the count of
    non-finite input samples each item replaced by zero.
    """
    n_images = x.shape[0]
    k_total, cg, lh, lw2 = spectra.shape
    c_total = cg * groups
    kg = k_total // groups
    bins = lh * lw2
    ho1 = (out.shape[2] - 1) * sh + 1
    wo1 = (out.shape[3] // parts - 1) * sw + 1
    tiles_h = (ho1 + vh - 1) // vh
    tiles_w = (wo1 + vw - 1) // vw
    n_blocks = (n_images + images_per_item - 1) // images_per_item
    flat_spectra = spectra.reshape((k_total, cg, bins))
    for item in prange(n_blocks * tiles_h * tiles_w):
        nblk = item // (tiles_h * tiles_w)
        ti = (item // tiles_w) % tiles_h
        tj = item % tiles_w
        n0 = nblk * images_per_item
        nb = min(images_per_item, n_images - n0)
        r0 = ti * vh
        c0 = tj * vw
        rows_in = min(lh, rowmap.shape[0] - r0)
        rows_out = min(vh, ho1 - r0)
        cols_out = min(vw, wo1 - c0)
        tile = np.empty((lh, lw), bias.dtype)
        xs = np.empty((nb, c_total, bins), spectra.dtype)
        ys = np.empty((nb, kg, bins), spectra.dtype)
        count = 0
        for ln in range(nb):
            for c in range(c_total):
                count += _gather(x, n0 + ln, c, parts, rowmap, colmap, left, width, fill, r0, c0,
                                 rows_in, tile)
                spectrum = xs[ln, c].reshape((lh, lw2))
                r2c(tile[:rows_in], spectrum[:rows_in], _ALONG_ROWS, True, 1.0, 1)
                spectrum[rows_in:] = 0
                c2c(spectrum, spectrum, _ALONG_COLUMNS, True, 1.0, 1)
        bad[item] = count
        for g in range(groups):
            _channel_sums(flat_spectra, xs, g, ys)
            for ln in range(nb):
                for kl in range(kg):
                    spectrum = ys[ln, kl].reshape((lh, lw2))
                    c2c(spectrum, spectrum, _ALONG_COLUMNS, False, 1.0, 1)
                    if sh == 1:
                        c2r(spectrum[:rows_out], tile[:rows_out], _ALONG_ROWS, False, 1.0, 1)
                    else:
                        for rr in range((sh - r0 % sh) % sh, rows_out, sh):
                            c2r(spectrum[rr:rr + 1], tile[rr:rr + 1], _ALONG_ROWS, False, 1.0, 1)
                    k = g * kg + kl
                    _scatter(tile, out, n0 + ln, k, parts, r0, c0, rows_out, cols_out, sh, sw,
                             bias[k], round_out)


@parallel_kernel
def add_non_finite_products(x, w, rowmap, colmap, fill, sh, sw, dh, dw, groups, regions, out):
    """out[n, k, i, j] += every product of its direct sum that has a non-finite factor.

    ``out`` holds the correlation computed with non-finite samples and taps replaced by zero, so
    it is finite; adding the non-finite products gives what the direct sum gives: NaN when any
    product is NaN or when +Inf and -Inf meet, else the infinity. Adding a non-finite product
    twice leaves these results unchanged, so samples in overlapping regions, and products with
    two non-finite factors, need no care.

    Preconditions: ``x`` (N, C, H, W), ``w`` (K, C/groups, kh, kw) real, ``out`` of their dtype;
    ``rowmap``/``colmap`` as in ``correlate_tiles`` with ``fill`` (1,) the constant padding;
    ``regions`` (R, 5) int64 rows (n, first padded row, end row, first padded column, end
    column) cover every non-finite sample.
    """
    n_images, channels = x.shape[0], x.shape[1]
    k_total, cg, kh, kw = w.shape
    ho, wo = out.shape[2], out.shape[3]
    kg = k_total // groups
    fill_value = fill[0]
    for n in prange(n_images):
        for region in range(regions.shape[0]):
            if regions[region, 0] != n:
                continue
            for c in range(channels):
                g = c // cg
                cl = c - g * cg
                for pr in range(regions[region, 1], regions[region, 2]):
                    src = rowmap[pr]
                    for pc in range(regions[region, 3], regions[region, 4]):
                        cm = colmap[pc]
                        v = x[n, c, src, cm] if src >= 0 and cm >= 0 else fill_value
                        if np.isfinite(v):
                            continue
                        for p in range(kh):
                            rr = pr - p * dh
                            if rr < 0 or rr % sh != 0 or rr // sh >= ho:
                                continue
                            for q in range(kw):
                                cc = pc - q * dw
                                if cc < 0 or cc % sw != 0 or cc // sw >= wo:
                                    continue
                                for k in range(g * kg, (g + 1) * kg):
                                    out[n, k, rr // sh, cc // sw] += v * w[k, cl, p, q]
        for k in range(k_total):
            c_first = (k // kg) * cg
            for cl in range(cg):
                for p in range(kh):
                    for q in range(kw):
                        tap = w[k, cl, p, q]
                        if np.isfinite(tap):
                            continue
                        for i in range(ho):
                            src = rowmap[i * sh + p * dh]
                            orow = out[n, k, i]
                            for j in range(wo):
                                cm = colmap[j * sw + q * dw]
                                inside = src >= 0 and cm >= 0
                                v = x[n, c_first + cl, src, cm] if inside else fill_value
                                orow[j] += v * tap
