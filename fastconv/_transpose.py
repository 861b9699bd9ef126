"""Transposed convolutions and the gradients of a convolution, as forward problems of the engine.

Every operation here is rewritten as one or several forward correlations, which the planner
prices and a strategy runs, all through one function, :func:`_forward`. The rewriting is the same
for every number of spatial axes (it loops over them); only ``_forward`` knows which ranks the
engine runs.

Per spatial axis, a forward correlation pads an input of size ``n`` by ``(lo, hi)`` to
``P = n + lo + hi`` and takes ``k`` taps at dilation ``d`` and stride ``s``:
``y[o] = sum_t xp[o*s + t*d] * w[t]`` for ``O = (P - d*(k-1) - 1) // s + 1`` outputs.

* Input gradient, and the transposed convolution: ``gxp[p] = sum gy[o] * w[t]`` over
  ``o*s + t*d == p``, with the weight's channel roles swapped (per group). Positions of one
  phase ``p % s`` meet only the taps ``t`` with ``t*d % s == p % s``: every ``s // gcd(s, d)``-th
  tap, at dilation ``d // gcd(s, d)``. So each phase is a small dense correlation of ``gy`` with
  those taps reversed (the stride-phase decomposition): ``s**rank`` forward problems with no
  multiply on a zero, against one problem on a zero-upsampled ``gy`` with ``s**rank`` times the
  multiply-adds (measured in bench/grad.py). A transposed convolution keeps the window
  ``[padding, padding + out)`` of ``gxp`` (``output_padding`` reaches past the last tap: zeros).
  Zero padding keeps ``gxp[lo:lo + n]``; the other modes fold all of ``gxp`` back onto the
  input positions that the padding copied (``core.padding``'s index maps), as autograd through
  ``F.pad`` does.
* Weight gradient: ``gw[t] = sum_{n, o} gy[n, o] * xp[n, o*s + t*d]``: a correlation of the
  padded input with ``gy`` as an output-sized kernel, where stride and dilation swap roles and
  batch and channels swap roles. Group ``i``'s input channels ``x[:, i*Cg + c]`` become the
  channels ``i*N + n`` of batch item ``c``, so that one grouped problem computes every group.
"""

from collections import namedtuple
from dataclasses import dataclass
from itertools import product
from math import gcd

import numpy as np

from ._validate import (
    check_adjoint_method,
    check_plan_method,
    grad_input_call,
    grad_shapes_call,
    grad_weight_call,
    plan_dtype,
    shape_tuple,
    shapes_rank,
    threads_count,
    transpose_arrays,
    transpose_call,
)
from .core.padding import _axis_map

Spec = namedtuple("Spec", "shape dtype")
"""A forward problem's operand given by shape and dtype alone: planning instead of running."""


def _forward(x, w, *, stride, padding, dilation, groups, padding_mode, method, threads):
    """The engine's forward correlation (``conv{rank}d``) of canonical ``x`` (N, C, *spatial)
    and ``w`` (K, C / groups, *k) with ``padding`` as one (before, after) pair per spatial axis.

    Returns the output (N, K, *out), or, when ``x`` and ``w`` are :data:`Spec`, the engine's
    Plan of that problem. Every operation of this module runs through here: pointing it at an
    engine of other ranks gives them all of it.
    """
    rank = len(x.shape) - 2
    if rank != 2:
        raise NotImplementedError(
            f"transposed convolutions and gradients of rank {rank} need the conv{rank}d engine, "
            "which fastconv does not have yet; rank 2 works.")
    # Imported here: fastconv._api imports this module.
    from ._api import conv2d, plan

    options = dict(stride=stride, padding=padding, dilation=dilation, groups=groups,
                   padding_mode=padding_mode, method=method, threads=threads)
    if isinstance(x, Spec):
        return plan(x.shape, w.shape, dtype=x.dtype, **options)
    return conv2d(x, w, **options)


@dataclass(frozen=True)
class _Piece:
    """One spatial axis of one forward problem of the input gradient."""

    out: slice
    """The result positions it fills (one phase: every ``stride``-th)."""
    source: slice
    """The window of grad_output it reads, clipped to grad_output."""
    padding: tuple[int, int]
    """Zeros around the clipped window (where the window reaches past grad_output)."""
    taps: slice
    """The weight's taps it uses, reversed."""
    dilation: int


def _phases(size, taps, stride, dilation, start, length):
    """The pieces of one axis that compute ``gxp[start:start + length]`` from a grad_output of
    ``size`` samples and a weight of ``taps`` taps; phases that meet no tap (or only
    grad_output's zeros) are left out: their positions stay zero."""
    common = gcd(stride, dilation)
    tap_step, tap_dilation = stride // common, dilation // common
    pieces = []
    for first in range(min(stride, length)):
        position = start + first
        phase = position % stride
        if phase % common:
            continue
        # The first tap t of this phase: t*dilation % stride == phase.
        tap = (phase // common) * pow(tap_dilation, -1, tap_step) % tap_step
        if tap >= taps:
            continue
        count = (length - first + stride - 1) // stride
        used = (taps - 1 - tap) // tap_step + 1
        offset = (phase - tap * dilation) // stride
        begin = (position - phase) // stride + offset - (used - 1) * tap_dilation
        span = count + (used - 1) * tap_dilation
        if begin >= size or begin + span <= 0:
            continue
        last = tap + (used - 1) * tap_step
        pieces.append(_Piece(
            out=slice(first, None, stride),
            source=slice(max(begin, 0), min(begin + span, size)),
            padding=(max(-begin, 0), max(begin + span - size, 0)),
            taps=slice(last, tap - 1 if tap else None, -tap_step),
            dilation=tap_dilation,
        ))
    return pieces


def _swap_channels(w, groups):
    """(K, C/groups, *k) -> (C, K/groups, *k): each group's input and output channels swapped."""
    out_channels, cg = w.shape[:2]
    kernel = w.shape[2:]
    return w.reshape(groups, out_channels // groups, cg, *kernel).swapaxes(1, 2).reshape(
        groups * cg, out_channels // groups, *kernel)


def _length(index, size):
    return len(range(*index.indices(size)))


def _adjoint(gy, w, stride, dilation, groups, windows, method, threads):
    """``gxp[..., start:start + length]`` (one ``windows`` pair per axis) of the input gradient of
    a convolution with weight ``w`` (K, C/groups, *k) whose output gradient is ``gy``
    (N, K, *out): (N, C, *lengths). With :data:`Spec` operands, the plans of its problems."""
    planning = isinstance(gy, Spec)
    batch, sizes = gy.shape[0], gy.shape[2:]
    channels = w.shape[1] * groups
    kernel = w.shape[2:]
    axes = [_phases(*axis) for axis in zip(sizes, kernel, stride, dilation, *zip(*windows))]
    swapped = Spec((channels, w.shape[0] // groups, *kernel), w.dtype) if planning else (
        _swap_channels(w, groups))
    out = [] if planning else np.zeros((batch, channels, *(n for _, n in windows)), gy.dtype)
    for pieces in product(*axes):
        options = dict(stride=(1,) * len(pieces), padding=tuple(p.padding for p in pieces),
                       dilation=tuple(p.dilation for p in pieces), groups=groups,
                       padding_mode="zeros", method=method, threads=threads)
        if planning:
            x_shape = gy.shape[:2] + tuple(_length(p.source, n) for p, n in zip(pieces, sizes))
            w_shape = swapped.shape[:2] + tuple(_length(p.taps, k) for p, k in zip(pieces, kernel))
            out.append(_forward(Spec(x_shape, gy.dtype), Spec(w_shape, w.dtype), **options))
            continue
        x = gy[(Ellipsis, *(p.source for p in pieces))]
        taps = swapped[(Ellipsis, *(p.taps for p in pieces))]
        out[(Ellipsis, *(p.out for p in pieces))] = _forward(x, taps, **options)
    return tuple(out) if planning else out


def _fold(gxp, sizes, padding, padding_mode):
    """The gradient on the padded input folded back onto the input: each padded position adds
    into the input position its padding copied (core.padding's index maps), axis by axis."""
    for axis, (size, (before, after)) in enumerate(zip(sizes, padding, strict=True), start=2):
        lead = (slice(None),) * axis
        folded = gxp[(*lead, slice(before, before + size))].copy()
        edges = np.r_[0:before, before + size:before + size + after]
        if len(edges):
            source = _axis_map(size, before, after, padding_mode)[edges]
            np.add.at(folded, (*lead, source), gxp[(*lead, edges)])
        gxp = folded
    return gxp


def input_gradient(rank, input_shape, weight, grad_output, stride, padding, dilation, groups,
                   padding_mode, method, threads):
    """``conv{rank}d_input``: validated, computed, shaped like ``input_shape``."""
    check_adjoint_method(method)
    count = threads_count(threads)
    (gy, w), (groups, stride, pads, dilation), x_full, _ = grad_input_call(
        input_shape, weight, grad_output, stride, padding, dilation, groups, padding_mode, rank)
    sizes = x_full[2:]
    if padding_mode == "zeros":
        return _adjoint(gy, w, stride, dilation, groups,
                        [(lo, n) for n, (lo, _) in zip(sizes, pads, strict=True)], method,
                        count).reshape(tuple(input_shape))
    windows = [(0, n + lo + hi) for n, (lo, hi) in zip(sizes, pads, strict=True)]
    gxp = _adjoint(gy, w, stride, dilation, groups, windows, method, count)
    return _fold(gxp, sizes, pads, padding_mode).reshape(tuple(input_shape))


def _weight_problem(x, gy, groups, stride, padding, dilation, padding_mode, method, threads):
    """The forward problem of the weight gradient: (batch Cg, channels groups*N) input, grad
    output as the (K, N, *out) weight, stride and dilation swapped."""
    batch, channels, *sizes = x.shape
    cg = channels // groups
    options = dict(stride=dilation, padding=padding, dilation=stride, groups=groups,
                   padding_mode=padding_mode, method=method, threads=threads)
    if isinstance(x, Spec):
        w_shape = (gy.shape[1], batch, *gy.shape[2:])
        return _forward(Spec((cg, groups * batch, *sizes), x.dtype), Spec(w_shape, gy.dtype),
                        **options)
    spatial = tuple(range(3, 3 + len(sizes)))
    swapped = x.reshape(batch, groups, cg, *sizes).transpose(2, 1, 0, *spatial).reshape(
        cg, groups * batch, *sizes)
    return _forward(swapped, gy.swapaxes(0, 1), **options)


def weight_gradient(rank, input, weight_shape, grad_output, stride, padding, dilation, groups,
                    padding_mode, method, threads):
    """``conv{rank}d_weight``: validated, computed, shaped like ``weight_shape``."""
    check_adjoint_method(method)
    count = threads_count(threads)
    (x, gy), (groups, stride, pads, dilation), w_full = grad_weight_call(
        input, weight_shape, grad_output, stride, padding, dilation, groups, padding_mode, rank)
    out = _weight_problem(x, gy, groups, stride, pads, dilation, padding_mode, method, count)
    # The last outputs of an axis may reach past the kernel (the forward's unused padding).
    out = out[(slice(None), slice(None), *(slice(0, k) for k in w_full[2:]))]
    return np.ascontiguousarray(out.swapaxes(0, 1)).reshape(tuple(weight_shape))


def transposed(rank, input, weight, bias, stride, padding, output_padding, groups, dilation,
               method, threads):
    """``conv_transpose{rank}d``: validated, computed, shaped like PyTorch's result."""
    check_adjoint_method(method)
    count = threads_count(threads)
    (x, w, b), checked = transpose_arrays(input, weight, bias, stride, padding, output_padding,
                                          dilation, groups, rank)
    _, _, (groups, stride, pads, dilation), _, out_sizes, lead = checked
    windows = [(lo, n) for (lo, _), n in zip(pads, out_sizes, strict=True)]
    out = _adjoint(x, w, stride, dilation, groups, windows, method, count)
    if b is not None:
        out += b.reshape((-1,) + (1,) * rank)
    if lead is None:
        return out[0, 0]
    return out if lead else out[0]


def _plan_options(dtype, method, threads):
    check_plan_method(method)
    return plan_dtype(dtype), threads_count(threads)


def plan_transposed(input_shape, weight_shape, dtype, stride, padding, output_padding, groups,
                    dilation, method, threads):
    """The plans of a ``conv_transpose{rank}d`` call given by shapes."""
    dtype, count = _plan_options(dtype, method, threads)
    x_shape = shape_tuple(input_shape, "input_shape")
    w_shape = shape_tuple(weight_shape, "weight_shape")
    x_full, w_full, (groups, stride, pads, dilation), _, out_sizes, _ = transpose_call(
        x_shape, w_shape, stride, padding, output_padding, dilation, groups,
        shapes_rank(x_shape, w_shape), names=("input_shape", "weight_shape"))
    windows = [(lo, n) for (lo, _), n in zip(pads, out_sizes, strict=True)]
    return _adjoint(Spec(x_full, dtype), Spec(w_full, dtype), stride, dilation, groups, windows,
                    method, count)


def plan_input(input_shape, weight_shape, dtype, stride, padding, dilation, groups,
               padding_mode, method, threads):
    """The plans of a ``conv{rank}d_input`` call given by shapes."""
    dtype, count = _plan_options(dtype, method, threads)
    x_full, w_full, (groups, stride, pads, dilation) = grad_shapes_call(
        input_shape, weight_shape, stride, padding, dilation, groups, padding_mode)
    sizes = x_full[2:]
    out = tuple((n + lo + hi - d * (k - 1) - 1) // s + 1 for n, (lo, hi), d, k, s in zip(
        sizes, pads, dilation, w_full[2:], stride, strict=True))
    whole = padding_mode != "zeros"
    windows = [(0, n + lo + hi) if whole else (lo, n) for n, (lo, hi) in zip(sizes, pads,
                                                                             strict=True)]
    gy = Spec(x_full[:1] + w_full[:1] + out, dtype)
    return _adjoint(gy, Spec(w_full, dtype), stride, dilation, groups, windows, method, count)


def plan_weight(input_shape, weight_shape, dtype, stride, padding, dilation, groups,
                padding_mode, method, threads):
    """The plan of a ``conv{rank}d_weight`` call given by shapes (one problem)."""
    dtype, count = _plan_options(dtype, method, threads)
    x_full, w_full, (groups, stride, pads, dilation) = grad_shapes_call(
        input_shape, weight_shape, stride, padding, dilation, groups, padding_mode)
    out = tuple((n + lo + hi - d * (k - 1) - 1) // s + 1 for n, (lo, hi), d, k, s in zip(
        x_full[2:], pads, dilation, w_full[2:], stride, strict=True))
    gy = Spec(x_full[:1] + w_full[:1] + out, dtype)
    return (_weight_problem(Spec(x_full, dtype), gy, groups, stride, pads, dilation,
                            padding_mode, method, count),)
