"""Runner of the direct strategy: its tiling (output rows per parallel item), index maps (of the
samples read alone, for an axis that reads few of its padded samples), then the kernel."""

from dataclasses import replace
from functools import lru_cache

import numpy as np

from ...core.costing import ITEMS_PER_THREAD
from ...core.geometry import NUMPY_PAD_MODES
from ...core.padding import axis_map, axis_sources
from .kernels import (
    correlate_direct,
    correlate_direct_serial,
    first_pass_taps,
    presets_strips,
    runs_unit_rows,
)

# A worker's strip (its block of padded input rows) is kept within this many bytes so it stays in
# L2 while every output channel of the group reads it (2 MiB L2 per core on the reference machine).
STRIP_BYTES = 512 * 2**10
# An axis whose padded extent exceeds this many times the samples its outputs read (outputs times
# kernel size) is gathered: the kernel runs on the read samples alone, as a stride-k undilated
# layer, so its strips and index maps do not grow with the stride, dilation or padding (a 16x16
# image, 3x3 kernel, stride 10**4: +381 MiB of strip before). Common layers stay below it (3x3
# stride 2: a padded extent about 2/3 of what its outputs read).
GATHER_RATIO = 4


def gathered_axes(geometry):
    """(rows, columns): whether each axis reads so few of its padded samples (see GATHER_RATIO,
    or a stride past the padded extent) that the kernel runs on the samples read alone."""
    g = geometry
    padded_h = g.height + g.padding[0] + g.padding[1]
    padded_w = g.width + g.padding[2] + g.padding[3]
    return (padded_h > GATHER_RATIO * g.out_height * g.kernel_height or g.stride[0] >= padded_h,
            padded_w > GATHER_RATIO * g.out_width * g.kernel_width or g.stride[1] >= padded_w)


@lru_cache(maxsize=256)
def kernel_geometry(geometry):
    """The geometry the direct kernel runs: ``geometry`` with each gathered axis (gathered_axes)
    replaced by an unpadded one of ``outputs * kernel`` samples, stride ``kernel`` and dilation 1
    (its index map lists the samples read)."""
    g = geometry
    rows, cols = gathered_axes(g)
    if not (rows or cols):
        return g
    height, top, bottom, sh, dh = g.height, g.padding[0], g.padding[1], g.stride[0], g.dilation[0]
    width, left, right, sw, dw = g.width, g.padding[2], g.padding[3], g.stride[1], g.dilation[1]
    if rows:
        height, top, bottom, sh, dh = g.out_height * g.kernel_height, 0, 0, g.kernel_height, 1
    if cols:
        width, left, right, sw, dw = g.out_width * g.kernel_width, 0, 0, g.kernel_width, 1
    return replace(g, height=height, width=width, padding=(top, bottom, left, right),
                   stride=(sh, sw), dilation=(dh, dw))


@lru_cache(maxsize=256)
def _gathered_map(size, before, outputs, kernel, stride, dilation, padding_mode):
    """The index map of a gathered axis: entry i * kernel + p is the source of padded sample
    i * stride + p * dilation. Cached (read-only), as the padding's own maps are."""
    positions = (np.arange(outputs, dtype=np.int64)[:, None] * stride
                 + np.arange(kernel, dtype=np.int64) * dilation)
    index = np.ascontiguousarray(axis_sources(positions.ravel(), size, before, padding_mode))
    index.flags.writeable = False
    return index


def block_rows(geometry, threads):
    """Output rows per parallel item: as many as fit the strip budget, while leaving enough items
    for every thread."""
    g = geometry
    padded_width = g.width + g.padding[2] + g.padding[3]
    row_bytes = (g.channels // g.groups) * padded_width * g.dtype.itemsize
    halo = (g.kernel_height - 1) * g.dilation[0] + 1
    fit = 1 + max(0, (STRIP_BYTES // max(row_bytes, 1) - halo) // g.stride[0])
    items_outside_rows = g.batch * g.groups
    # One thread needs no balancing: its blocks are as tall as the strip budget allows.
    blocks_wanted = -(-ITEMS_PER_THREAD * threads // items_outside_rows) if threads > 1 else 1
    split = -(-g.out_height // blocks_wanted)
    return max(1, min(fit, split, g.out_height))


@lru_cache(maxsize=64)
def _identity_maps(images, channels, out_channels):
    """The plane maps of an (images, channels, H, W) input and its (images, out_channels, Ho, Wo)
    output: channel c of image n is plane n * channels + c. Cached (read-only)."""
    maps = (np.arange(images * channels, dtype=np.int64).reshape(images, channels),
            np.arange(images * out_channels, dtype=np.int64).reshape(images, out_channels))
    for plane_map in maps:
        plane_map.flags.writeable = False
    return maps


@lru_cache(maxsize=256)
def _kernel_arguments(geometry):
    """The kernel's arguments that follow from the geometry alone (index maps, left padding or
    the mark of gathered columns, strides and dilations, the pass options), computed once per
    geometry: a small call spent about 2 us deriving them."""
    g = geometry
    k = kernel_geometry(g)
    gather_rows, gather_cols = gathered_axes(g)
    left, constant = g.padding[2], NUMPY_PAD_MODES[g.padding_mode] == "constant"
    if gather_rows:
        rows = _gathered_map(g.height, g.padding[0], g.out_height, g.kernel_height, g.stride[0],
                             g.dilation[0], g.padding_mode)
    else:
        rows = axis_map(g.height, g.padding[0], g.padding[1], g.padding_mode)
    if gather_cols:
        cols = _gathered_map(g.width, g.padding[2], g.out_width, g.kernel_width, g.stride[1],
                             g.dilation[1], g.padding_mode)
        left, constant = cols.shape[0], False  # the kernel's mark of gathered columns
    else:
        cols = axis_map(g.width, g.padding[2], g.padding[3], g.padding_mode)
    cg = g.channels // g.groups
    return (rows, cols, left, (k.stride[0], k.stride[1], k.dilation[0], k.dilation[1]),
            first_pass_taps(cg * g.kernel_height * g.kernel_width),
            presets_strips(constant and any(g.padding), cols.shape[0], k.stride[1]),
            runs_unit_rows((cg, g.kernel_height, g.kernel_width), k.stride[1], k.dilation[1],
                           g.out_width))


def run_direct(problem, block, threads):
    """Correlate ``problem`` with the direct kernel, ``block`` output rows per parallel item
    (:func:`block_rows` of :func:`kernel_geometry`), on ``threads`` threads (already set; on one,
    the kernel's serial twin runs). A problem with plane maps reads and writes its channels
    through them (core.geometry.Problem)."""
    g = problem.geometry
    if problem.planes is None:
        x = problem.x.reshape(g.batch * g.channels, g.height, g.width)
        planes, out_planes = _identity_maps(g.batch, g.channels, g.out_channels)
        out = np.empty(g.out_shape, g.dtype)
    else:
        x, planes, out, out_planes = problem.x, problem.planes, problem.out, problem.out_planes
    rows, cols, left, steps, first, preset, unit_rows = _kernel_arguments(g)
    kernel = correlate_direct_serial if threads == 1 else correlate_direct
    kernel(x, planes, problem.w, problem.bias, rows, cols, left, problem.fill, *steps, g.groups,
           block, first, preset, unit_rows, out.reshape(-1, g.out_height, g.out_width),
           out_planes)
    return out
