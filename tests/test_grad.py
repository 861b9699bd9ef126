"""conv_transpose2d and fastconv.grad: against a NumPy reference (index maps and np.add.at, no
fastconv code), finite differences, torch.autograd where installed, the adjoint identity as a
property, plans, errors and laziness."""

import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from oracle import LOCAL_TOLERANCE, assert_close, normwise_bound

import fastconv
from fastconv.core.geometry import NUMPY_PAD_MODES, PADDING_MODES
from fastconv.strategies import REGISTRY

# ---------------------------------------------------------------------------------------------
# NumPy reference: every padded position's source index from np.pad of an index ramp (-1: zero),
# each tap's products scattered with np.add.at. Computed in float64; ``scale`` is the same sum of
# absolute values, which the tolerance table is relative to.


def _maps(shape, padding, padding_mode):
    mode = NUMPY_PAD_MODES[padding_mode]
    extra = {"constant_values": -1} if mode == "constant" else {}
    return [np.pad(np.arange(n), pair, mode, **extra) for n, pair in zip(shape, padding,
                                                                         strict=True)]


def _taps(x_shape, w_shape, stride, padding, dilation, padding_mode):
    """For each tap (i, j): the source rows and columns (-1: zero) its outputs read."""
    rows, cols = _maps(x_shape[2:], padding, padding_mode)
    out = [(len(m) - d * (k - 1) - 1) // s + 1 for m, d, k, s in zip(
        (rows, cols), dilation, w_shape[2:], stride, strict=True)]
    for i in range(w_shape[2]):
        for j in range(w_shape[3]):
            yield i, j, (rows[i * dilation[0]::stride[0]][:out[0]],
                         cols[j * dilation[1]::stride[1]][:out[1]])


def reference_grads(x_shape, w, x, gy, stride, padding, dilation, groups, padding_mode):
    """(input gradient, weight gradient) and their scales, in float64."""
    w, x, gy = (np.asarray(a, np.float64) for a in (w, x, gy))
    n, channels = x_shape[:2]
    k, cg = w.shape[:2]
    kg = k // groups
    gx, sx = np.zeros(x_shape), np.zeros(x_shape)
    gw, sw = np.zeros(w.shape), np.zeros(w.shape)
    for i, j, (rows, cols) in _taps(x_shape, w.shape, stride, padding, dilation, padding_mode):
        keep_r, keep_c = rows >= 0, cols >= 0
        r, c = rows[keep_r], cols[keep_c]
        g_tap = gy[:, :, keep_r][:, :, :, keep_c]
        for group in range(groups):
            ks, cs = slice(group * kg, (group + 1) * kg), slice(group * cg, (group + 1) * cg)
            index = (slice(None), cs, r[:, None], c[None, :])
            np.add.at(gx, index, np.einsum("nkhw,kc->nchw", g_tap[:, ks], w[ks, :, i, j]))
            np.add.at(sx, index, np.einsum("nkhw,kc->nchw", abs(g_tap[:, ks]),
                                           abs(w[ks, :, i, j])))
            xs = x[:, cs][:, :, r][:, :, :, c]
            gw[ks, :, i, j] = np.einsum("nkhw,nchw->kc", g_tap[:, ks], xs)
            sw[ks, :, i, j] = np.einsum("nkhw,nchw->kc", abs(g_tap[:, ks]), abs(xs))
    return (gx, sx), (gw, sw)


def _pairs(padding, kernel, stride, dilation):
    from fastconv._validate import padding_pairs

    return padding_pairs(padding, kernel, stride, dilation)


def check_grads(method, dtype, x_shape, w_shape, rng, *, stride=1, padding=0, dilation=1,
                groups=1, padding_mode="zeros"):
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal(w_shape).astype(dtype)
    options = dict(stride=stride, padding=padding, dilation=dilation, groups=groups,
                   padding_mode=padding_mode)
    y_shape = fastconv.conv2d(x, w, **options).shape
    gy = rng.standard_normal(y_shape).astype(dtype)
    s, d = (v if isinstance(v, tuple) else (v, v) for v in (stride, dilation))
    pads = _pairs(padding, w_shape[2:], s, d)
    (gx, sx), (gw, sw) = reference_grads(x_shape, w, x, gy, s, pads, d, groups, padding_mode)
    copies = [a.copy() for a in (x, w, gy)]
    for problems, function, args, expected, scale in (
        (fastconv.grad.plan_input, fastconv.grad.conv2d_input, (x_shape, w, gy), gx, sx),
        (fastconv.grad.plan_weight, fastconv.grad.conv2d_weight, (x, w_shape, gy), gw, sw),
    ):
        if method != "auto" and any(_declines(method, p) for p in problems(
                x_shape, w_shape, dtype=dtype, **options)):
            with pytest.raises(ValueError, match=f"`method` '{method}' cannot run"):
                function(*args, **options, method=method)
            continue
        got = function(*args, **options, method=method)
        assert_close(got, expected, scale, dtype, _error_model_method(method, problems, x_shape,
                                                                      w_shape, dtype, options))
    for a, b in zip((x, w, gy), copies, strict=True):
        np.testing.assert_array_equal(a, b)  # inputs never modified


def _declines(method, plan):
    return REGISTRY[method].declines(plan.geometry, fastconv.get_workspace_budget()) is not None


def _error_model_method(method, problems, x_shape, w_shape, dtype, options):
    """The method whose error model bounds the result: the forced one, or the least accurate
    that 'auto' chose among the problems."""
    if method != "auto":
        return method
    chosen = {p.method for p in problems(x_shape, w_shape, dtype=dtype, **options)}
    order = ("winograd", "fft")
    return next((m for m in order if m in chosen), "direct")


# ---------------------------------------------------------------------------------------------
# The matrix: methods x dtypes x stride x dilation x groups x padding forms and modes.

CASES = [
    # id, x shape, w shape, options
    ("3x3-s1-p1", (2, 4, 9, 8), (6, 4, 3, 3), dict(padding=1)),
    ("3x3-s2-p1", (2, 4, 9, 8), (6, 4, 3, 3), dict(stride=2, padding=1)),
    ("4x4-s2-p1-g2", (2, 4, 10, 10), (6, 2, 4, 4), dict(stride=2, padding=1, groups=2)),
    ("3x2-s3x2-d2-sides", (1, 3, 13, 11), (4, 3, 3, 2),
     dict(stride=(3, 2), dilation=2, padding=((2, 0), (1, 3)))),
    ("5x5-same-d(1,2)", (2, 2, 12, 12), (3, 2, 5, 5), dict(padding="same", dilation=(1, 2))),
    ("depthwise-3x3-s2", (2, 4, 8, 8), (4, 1, 3, 3), dict(stride=2, padding=(1, 2), groups=4)),
    ("2x2-s2-valid", (1, 2, 8, 8), (2, 2, 2, 2), dict(stride=2, padding="valid")),
    ("7x7-s2-p3", (2, 3, 16, 16), (4, 3, 7, 7), dict(stride=2, padding=3)),
    ("3x3-full", (1, 2, 6, 6), (2, 2, 3, 3), dict(padding="full")),
    # Phases that share one problem (groups kept apart in its channels).
    ("4x4-s2-g2", (2, 4, 8, 8), (6, 2, 4, 4), dict(stride=2, groups=2, padding=1)),
    ("5x4-s3-g2-p1", (1, 4, 10, 9), (4, 2, 5, 4), dict(stride=3, groups=2, padding=1)),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("method", ["auto", *fastconv.METHODS])
@pytest.mark.parametrize(("x_shape", "w_shape", "options"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_grads_match_reference(method, dtype, x_shape, w_shape, options, rng):
    check_grads(method, dtype, x_shape, w_shape, rng, **options)


@pytest.mark.parametrize("padding_mode", PADDING_MODES)
@pytest.mark.parametrize(("x_shape", "w_shape", "options"), [
    ((2, 4, 9, 8), (6, 2, 3, 3), dict(stride=2, padding=1, groups=2)),
    ((1, 2, 7, 9), (3, 2, 4, 3), dict(stride=(2, 3), padding=((3, 1), (0, 2)), dilation=(1, 2))),
    # padding wider than the image: the reflection repeats (numpy.pad's semantics)
    ((1, 1, 3, 4), (2, 1, 3, 3), dict(padding=4)),
], ids=["g2-s2", "sides-d12", "wide"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_padding_modes_fold_back(padding_mode, x_shape, w_shape, options, dtype, rng):
    check_grads("auto", dtype, x_shape, w_shape, rng, padding_mode=padding_mode, **options)


def test_weight_gradient_chunks_within_the_budget(rng):
    # A 64 KiB budget cuts the column GEMM into one problem per batch item; results are summed.
    x_shape, w_shape = (3, 4, 20, 20), (5, 4, 3, 3)
    plans = fastconv.grad.plan_weight(x_shape, w_shape, padding=1)
    with fastconv.workspace_budget(2**16):
        small = fastconv.grad.plan_weight(x_shape, w_shape, padding=1)
        assert len(small) >= len(plans)
        check_grads("auto", np.float64, x_shape, w_shape, rng, padding=1)


# ---------------------------------------------------------------------------------------------
# The weight gradient as one GEMM through im2col's micro-kernel (_transpose._gemm_problem).

GEMM_CASES = CASES + [
    ("32ch-3x3-g1", (2, 32, 7, 9), (40, 32, 3, 3), dict(padding=1)),
    ("stem-7x7-s2", (2, 3, 19, 17), (64, 3, 7, 7), dict(stride=2, padding=3)),
    ("g4-d2", (3, 12, 11, 10), (64, 3, 3, 2), dict(groups=4, dilation=2, padding=(2, 1))),
]


def _gemm_weight_gradient(x, w_shape, gy, padding_mode="zeros", **options):
    from fastconv._transpose import _gemm_problem

    stride, dilation = (options.get(k, 1) for k in ("stride", "dilation"))
    s, d = (v if isinstance(v, tuple) else (v, v) for v in (stride, dilation))
    pads = _pairs(options.get("padding", 0), w_shape[2:], s, d)
    return _gemm_problem(x, gy, w_shape[2:], options.get("groups", 1), s, pads, d, padding_mode,
                         "auto", 2)


@pytest.mark.parametrize("padding_mode", ["zeros", "reflect", "circular"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize(("x_shape", "w_shape", "options"), [c[1:] for c in GEMM_CASES],
                         ids=[c[0] for c in GEMM_CASES])
def test_gemm_weight_gradient_matches_reference(x_shape, w_shape, options, dtype, padding_mode,
                                                rng):
    """Rows of kernel columns x channels (column dilation 1, no groups) or of channels alone,
    partial register tiles and panels, strides, dilations, groups, padding modes."""
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal(w_shape).astype(dtype)
    y = fastconv.conv2d(x, w, padding_mode=padding_mode, **options)
    gy = rng.standard_normal(y.shape).astype(dtype)
    copies = x.copy(), gy.copy()
    got = _gemm_weight_gradient(x, w_shape, gy, padding_mode, **options)
    s, d = (options.get(k, 1) for k in ("stride", "dilation"))
    s, d = (v if isinstance(v, tuple) else (v, v) for v in (s, d))
    pads = _pairs(options.get("padding", 0), w_shape[2:], s, d)
    _, (gw, sw) = reference_grads(x_shape, w, x, gy, s, pads, d, options.get("groups", 1),
                                  padding_mode)
    assert_close(got, gw, sw, dtype)
    np.testing.assert_array_equal(x, copies[0])
    np.testing.assert_array_equal(gy, copies[1])


@pytest.mark.parametrize(("x_shape", "w_shape", "options"), [
    ((3, 5, 13), (7, 5, 4), dict(stride=2, padding=1)),
    ((2, 4, 30), (32, 2, 3), dict(dilation=3, groups=2)),
    ((2, 4, 5, 6, 7), (6, 2, 3, 2, 3), dict(padding=1, groups=2)),
    ((1, 3, 6, 7, 8), (33, 3, 3, 3, 3), dict(stride=(1, 2, 2), padding=(1, 0, 2))),
], ids=["1d-s2", "1d-d3-g2", "3d-g2", "3d-s122"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_gemm_weight_gradient_ranks_1_and_3(x_shape, w_shape, options, dtype, rng):
    """Against the column formulation (NumPy's sliding windows and a forward problem)."""
    from fastconv._transpose import _weight_problems

    conv = fastconv.conv1d if len(x_shape) == 3 else fastconv.conv3d
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal(w_shape).astype(dtype)
    gy = rng.standard_normal(conv(x, w, **options).shape).astype(dtype)
    rank = len(x_shape) - 2
    s, d, p = (options.get(k, default) for k, default in (
        ("stride", 1), ("dilation", 1), ("padding", 0)))
    s, d, p = (v if isinstance(v, tuple) else (v,) * rank for v in (s, d, p))
    pads = tuple((v, v) for v in p)
    from fastconv._transpose import _gemm_problem

    got = _gemm_problem(x, gy, w_shape[2:], options.get("groups", 1), s, pads, d, "zeros",
                        "auto", 2)
    expected = _weight_problems(x.astype(np.float64), gy.astype(np.float64), w_shape[2:],
                                options.get("groups", 1), s, pads, d, "zeros", "direct", 1)
    scale = _weight_problems(abs(x).astype(np.float64), abs(gy).astype(np.float64),
                             w_shape[2:], options.get("groups", 1), s, pads, d, "zeros",
                             "direct", 1)
    assert_close(got, expected, scale, dtype)


def test_gemm_weight_gradient_is_chosen_and_runs(monkeypatch, rng):
    """'auto' plans the micro-kernel GEMM for a ResNet 3x3 layer and conv2d_weight runs it;
    integers and a forced method other than im2col take the forward formulations."""
    from fastconv.grad import GemmPlan
    from fastconv.strategies.im2col import kernels

    (plan,) = fastconv.grad.plan_weight((8, 64, 56, 56), (64, 64, 3, 3), dtype=np.float32,
                                        padding=1)
    assert isinstance(plan, GemmPlan) and plan.method == "im2col"
    assert plan.geometry.macs == 8 * 64 * 56 * 56 * 64 * 9
    text = repr(plan)
    assert "one GEMM reducing over batch and pixels" in text and "kernel columns x channels" in text
    for method in ("direct", "fft"):
        plans = fastconv.grad.plan_weight((2, 8, 12, 12), (32, 8, 3, 3), padding=1,
                                          method=method)
        assert not any(isinstance(p, GemmPlan) for p in plans)
    calls = []
    original = kernels.weight_gradient_gemm
    monkeypatch.setattr(kernels, "weight_gradient_gemm",
                        lambda *args: calls.append(args[-1].shape) or original(*args))
    x = rng.standard_normal((4, 32, 12, 12)).astype(np.float32)
    gy = rng.standard_normal((4, 64, 12, 12)).astype(np.float32)
    (plan,) = fastconv.grad.plan_weight(x.shape, (64, 32, 3, 3), dtype=np.float32, padding=1)
    assert isinstance(plan, GemmPlan)
    got = fastconv.grad.conv2d_weight(x, (64, 32, 3, 3), gy, padding=1)
    assert calls
    _, (gw, sw) = reference_grads(x.shape, np.zeros((64, 32, 3, 3)), x, gy, (1, 1),
                                  ((1, 1), (1, 1)), (1, 1), 1, "zeros")
    assert_close(got, gw, sw, np.float32)


def test_gemm_weight_gradient_chunks_within_the_budget(rng):
    """A budget holding a few images' copies: chunks of images, accumulated; the
    extra memory (tracemalloc: NumPy's copies and the result tile) within the budget. A budget
    below one image's copies: the formulation does not apply."""
    import tracemalloc

    from fastconv.strategies.im2col import runner

    x = rng.standard_normal((5, 64, 20, 20)).astype(np.float32)
    gy = rng.standard_normal((5, 64, 20, 20)).astype(np.float32)
    budget = 2**20
    with fastconv.workspace_budget(budget):
        layout = runner.weight_gemm(x.shape, (20, 20), (3, 3), 1, 64, (1, 1), ((1, 1), (1, 1)),
                                    (1, 1), np.float32, 2, budget)
        assert layout.images < x.shape[0]
        _gemm_weight_gradient(x, (64, 64, 3, 3), gy, padding=1)  # compiled outside the trace
        tracemalloc.start()
        try:
            got = _gemm_weight_gradient(x, (64, 64, 3, 3), gy, padding=1)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert peak - got.nbytes <= budget + 2**16, (peak - got.nbytes, budget)
    _, (gw, sw) = reference_grads(x.shape, np.zeros((64, 64, 3, 3)), x, gy, (1, 1),
                                  ((1, 1), (1, 1)), (1, 1), 1, "zeros")
    assert_close(got, gw, sw, np.float32)
    assert runner.weight_gemm(x.shape, (20, 20), (3, 3), 1, 64, (1, 1), ((1, 1), (1, 1)), (1, 1),
                              np.float32, 2, 2**16) is None
    assert runner.weight_gemm(x.shape, (20, 20), (3, 3), 1, 64, (1, 1), ((1, 1), (1, 1)), (1, 1),
                              np.complex64, 2, 2**26) is None


@pytest.mark.parametrize("shape", [(3, 6, 6), (6, 6)], ids=["CHW", "HW"])
def test_unbatched_shapes(shape, rng):
    w_shape = (2, 3, 3, 3) if len(shape) == 3 else (3, 3)
    x = rng.standard_normal(shape)
    w = rng.standard_normal(w_shape)
    gy = rng.standard_normal(fastconv.conv2d(x, w, padding=1).shape)
    gx = fastconv.grad.conv2d_input(shape, w, gy, padding=1)
    gw = fastconv.grad.conv2d_weight(x, w_shape, gy, padding=1)
    full = (1,) * (4 - len(shape)) + shape
    full_w = (1,) * (4 - len(w_shape)) + w_shape
    gy4 = gy.reshape((1, full_w[0]) + gy.shape[-2:])
    (rx, _), (rw, _) = reference_grads(full, w.reshape(full_w), x.reshape(full), gy4, (1, 1),
                                       ((1, 1), (1, 1)), (1, 1), 1, "zeros")
    assert gx.shape == shape and gw.shape == w_shape
    np.testing.assert_allclose(gx, rx.reshape(shape), atol=1e-12)
    np.testing.assert_allclose(gw, rw.reshape(w_shape), atol=1e-12)


# ---------------------------------------------------------------------------------------------
# Finite differences of a scalar loss: L = sum(conv2d(x, w) ** 2) / 2, so dL/dy = y.


@pytest.mark.parametrize("padding_mode", ["zeros", "reflect", "circular"])
def test_finite_differences(padding_mode, rng):
    options = dict(stride=2, padding=2, dilation=(1, 2), groups=2, padding_mode=padding_mode)
    x = rng.standard_normal((2, 4, 9, 10))
    w = rng.standard_normal((4, 2, 3, 3))

    def loss(x, w):
        return 0.5 * np.sum(fastconv.conv2d(x, w, **options) ** 2)

    y = fastconv.conv2d(x, w, **options)
    gx = fastconv.grad.conv2d_input(x.shape, w, y, **options)
    gw = fastconv.grad.conv2d_weight(x, w.shape, y, **options)
    eps = 1e-5
    for _ in range(3):
        vx, vw = rng.standard_normal(x.shape), rng.standard_normal(w.shape)
        dx = (loss(x + eps * vx, w) - loss(x - eps * vx, w)) / (2 * eps)
        dw = (loss(x, w + eps * vw) - loss(x, w - eps * vw)) / (2 * eps)
        np.testing.assert_allclose(dx, np.sum(gx * vx), rtol=1e-7)
        np.testing.assert_allclose(dw, np.sum(gw * vw), rtol=1e-7)


# ---------------------------------------------------------------------------------------------
# conv_transpose2d: the input gradient of the convolution it transposes (NumPy reference) and
# PyTorch's conv_transpose2d.

TRANSPOSE_CASES = [
    ("k4-s2-p1", (2, 4, 5, 6), (4, 3, 4, 4), dict(stride=2, padding=1)),
    ("k3-s2-op1", (1, 3, 4, 4), (3, 2, 3, 3), dict(stride=2, padding=1, output_padding=1)),
    ("k2-s2", (2, 4, 3, 3), (4, 2, 2, 2), dict(stride=2)),
    ("k4-s2-g2", (2, 4, 3, 3), (4, 3, 4, 4), dict(stride=2, groups=2)),
    ("k4-s2-d3-p2", (1, 2, 5, 6), (2, 3, 4, 4), dict(stride=2, dilation=3, padding=2)),
    ("k4-s2-d5", (1, 2, 4, 3), (2, 2, 4, 4), dict(stride=2, dilation=5)),
    ("k3-s(3,2)-d2-g2-op(2,1)", (2, 4, 4, 5), (4, 3, 3, 2),
     dict(stride=(3, 2), dilation=2, groups=2, padding=(1, 0), output_padding=(2, 1))),
    ("k3-s1-d2-op1", (1, 2, 5, 5), (2, 2, 3, 3), dict(dilation=2, output_padding=1)),
]


def _transpose_reference(x, w, options):
    stride, dilation = (options.get(name, 1) for name in ("stride", "dilation"))
    stride, dilation = (v if isinstance(v, tuple) else (v, v) for v in (stride, dilation))
    padding = options.get("padding", 0)
    padding = padding if isinstance(padding, tuple) else (padding, padding)
    extra = options.get("output_padding", 0)
    extra = extra if isinstance(extra, tuple) else (extra, extra)
    groups = options.get("groups", 1)
    out = tuple((n - 1) * s - 2 * p + d * (k - 1) + e + 1 for n, s, p, d, k, e in zip(
        x.shape[2:], stride, padding, dilation, w.shape[2:], extra, strict=True))
    # The convolution it transposes: input (N, C_out, *out), weight w (C_in, C_out/groups, *k).
    x_shape = (x.shape[0], w.shape[1] * groups, *out)
    pads = tuple((p, p) for p in padding)
    # Its forward output size may exceed x's by output_padding // stride: x padded with zeros.
    o = [(m + 2 * p - d * (k - 1) - 1) // s + 1 for m, p, d, k, s in zip(
        out, padding, dilation, w.shape[2:], stride, strict=True)]
    gy = np.zeros(x.shape[:2] + tuple(o))
    gy[:, :, :x.shape[2], :x.shape[3]] = x
    (gx, sx), _ = reference_grads(x_shape, w, np.zeros(x_shape), gy, stride, pads, dilation,
                                  groups, "zeros")
    return gx, sx


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("method", ["auto", "direct", "im2col", "fft"])
@pytest.mark.parametrize(("x_shape", "w_shape", "options"), [c[1:] for c in TRANSPOSE_CASES],
                         ids=[c[0] for c in TRANSPOSE_CASES])
def test_conv_transpose2d_matches_reference(method, dtype, x_shape, w_shape, options, rng):
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal(w_shape).astype(dtype)
    bias = rng.standard_normal(w_shape[1] * options.get("groups", 1)).astype(dtype)
    got = fastconv.conv_transpose2d(x, w, bias, **options, method=method)
    expected, scale = _transpose_reference(x, w, options)
    expected += bias[:, None, None]
    scale += abs(bias)[:, None, None]
    assert_close(got, expected, scale, dtype, "fft" if method == "auto" else method)


def test_conv_transpose2d_unbatched(rng):
    x = rng.standard_normal((3, 4, 4))
    w = rng.standard_normal((3, 2, 3, 3))
    batched = fastconv.conv_transpose2d(x[None], w, stride=2)
    np.testing.assert_array_equal(fastconv.conv_transpose2d(x, w, stride=2), batched[0])
    image, kernel = rng.standard_normal((4, 4)), rng.standard_normal((3, 3))
    np.testing.assert_array_equal(
        fastconv.conv_transpose2d(image, kernel, 1.5, stride=2),
        fastconv.conv_transpose2d(image[None, None], kernel[None, None], [1.5], stride=2)[0, 0])


# ---------------------------------------------------------------------------------------------
# torch.autograd, through F.pad (index maps for 'symmetric', which F.pad lacks).


def _torch_grads(torch, x, w, gy, stride, pads, dilation, groups, padding_mode):
    xt = torch.from_numpy(x).requires_grad_()
    wt = torch.from_numpy(w).requires_grad_()
    (top, bottom), (left, right) = pads
    if padding_mode in ("zeros", "reflect", "replicate", "circular"):
        mode = "constant" if padding_mode == "zeros" else padding_mode
        xp = torch.nn.functional.pad(xt, (left, right, top, bottom), mode=mode)
    else:
        rows, cols = (torch.from_numpy(m) for m in _maps(x.shape[2:], pads, padding_mode))
        xp = xt[:, :, rows][:, :, :, cols]
    y = torch.nn.functional.conv2d(xp, wt, stride=stride, dilation=dilation, groups=groups)
    return [g.numpy() for g in torch.autograd.grad(y, (xt, wt), torch.from_numpy(gy))]


@pytest.mark.parametrize("padding_mode", PADDING_MODES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_grads_match_torch_autograd(padding_mode, dtype, rng):
    torch = pytest.importorskip("torch")
    options = dict(stride=(2, 1), padding=((2, 1), (1, 2)), dilation=(1, 2), groups=2)
    x = rng.standard_normal((2, 4, 10, 9)).astype(dtype)
    w = rng.standard_normal((6, 2, 3, 3)).astype(dtype)
    y = fastconv.conv2d(x, w, **options, padding_mode=padding_mode)
    gy = rng.standard_normal(y.shape).astype(dtype)
    ex, ew = _torch_grads(torch, x, w, gy, options["stride"], options["padding"],
                          options["dilation"], options["groups"], padding_mode)
    gx = fastconv.grad.conv2d_input(x.shape, w, gy, **options, padding_mode=padding_mode)
    gw = fastconv.grad.conv2d_weight(x, w.shape, gy, **options, padding_mode=padding_mode)
    tolerance = 1e-4 if dtype == np.float32 else 1e-11
    np.testing.assert_allclose(gx, ex, atol=tolerance * np.abs(ex).max())
    np.testing.assert_allclose(gw, ew, atol=tolerance * np.abs(ew).max())


@pytest.mark.parametrize(("x_shape", "w_shape", "options"), [c[1:] for c in TRANSPOSE_CASES],
                         ids=[c[0] for c in TRANSPOSE_CASES])
def test_conv_transpose2d_matches_torch(x_shape, w_shape, options, rng):
    torch = pytest.importorskip("torch")
    x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    expected = torch.nn.functional.conv_transpose2d(torch.from_numpy(x), torch.from_numpy(w),
                                                    **options).numpy()
    got = fastconv.conv_transpose2d(x, w, **options)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, atol=1e-12 * np.abs(expected).max())


# ---------------------------------------------------------------------------------------------
# The adjoint identity: <conv2d(x, w), y> == <x, conv2d_input(y)> == <w, conv2d_weight(x, y)>.


@st.composite
def adjoint_problems(draw):
    groups = draw(st.sampled_from([1, 2]))
    channels, out_channels = groups * draw(st.integers(1, 2)), groups * draw(st.integers(1, 2))
    kernel = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    padding = tuple((draw(st.integers(0, 3)), draw(st.integers(0, 3))) for _ in range(2))
    spans = [d * (k - 1) + 1 for d, k in zip(dilation, kernel, strict=True)]
    size = tuple(draw(st.integers(max(1, s - sum(p)), s + 6)) for s, p in zip(spans, padding,
                                                                              strict=True))
    mode = draw(st.sampled_from(PADDING_MODES))
    batch = draw(st.integers(1, 2))
    return ((batch, channels, *size), (out_channels, channels // groups, *kernel),
            dict(stride=stride, padding=padding, dilation=dilation, groups=groups,
                 padding_mode=mode), draw(st.integers(0, 2**32 - 1)))


@settings(max_examples=60, deadline=None)
@given(adjoint_problems())
def test_adjoint_identity(problem):
    x_shape, w_shape, options, seed = problem
    rng = np.random.default_rng(seed)
    x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    y_out = fastconv.conv2d(x, w, **options)
    y = rng.standard_normal(y_out.shape)
    forward = np.sum(y_out * y)
    by_input = np.sum(x * fastconv.grad.conv2d_input(x_shape, w, y, **options))
    by_weight = np.sum(w * fastconv.grad.conv2d_weight(x, w_shape, y, **options))
    scale = np.sum(np.abs(fastconv.conv2d(abs(x), abs(w), **options)) * abs(y))
    tolerance = LOCAL_TOLERANCE[np.dtype(np.float64)] * scale + normwise_bound(
        "fft", np.dtype(np.float64), np.array([[scale]]))[0, 0]
    assert abs(forward - by_input) <= tolerance
    assert abs(forward - by_weight) <= tolerance


# ---------------------------------------------------------------------------------------------
# Plans, laziness, every rank.


def test_stride_one_input_gradient_returns_its_problem_result(monkeypatch, rng):
    # One phase fills every position in order: its result is the gradient, never scattered
    # into a zeroed array; a strided gradient still scatters its phases.
    from fastconv import _transpose

    scattered = []
    original = _transpose._scatter
    monkeypatch.setattr(_transpose, "_scatter",
                        lambda *args: scattered.append(args) or original(*args))
    x = rng.standard_normal((2, 3, 9, 8))
    w = rng.standard_normal((4, 3, 3, 3))
    gy = rng.standard_normal((2, 4, 9, 8))
    got = fastconv.grad.conv2d_input(x.shape, w, gy, padding=1)
    assert scattered == []
    # The adjoint's defining identity: <conv2d(x, w), gy> == <x, conv2d_input(gy)>.
    forward = fastconv.conv2d(x, w, padding=1, method="direct")
    np.testing.assert_allclose(np.vdot(x, got), np.vdot(forward, gy), rtol=1e-12)
    assert got.shape == x.shape
    fastconv.grad.conv2d_input(x.shape, w, gy[..., ::2, ::2].copy(), stride=2, padding=1)
    assert scattered


def test_plans_explain_the_forward_problems():
    plans = fastconv.grad.plan_transpose((8, 256, 16, 16), (256, 128, 4, 4), dtype=np.float32,
                                         stride=2, padding=1)
    # Four stride phases of 2x2 taps: the estimates keep them apart (one shared problem of
    # 17x17 outputs and 4 x 128 channels is estimated slower).
    assert len(plans) == 4
    assert all(p.geometry.kernel_height == p.geometry.kernel_width == 2 for p in plans)
    assert all(p.geometry.channels == 256 and p.geometry.out_channels == 128 for p in plans)
    assert all(p.method in fastconv.METHODS for p in plans)
    # The ResNet stem's input gradient: phases of 4x4, 4x3, 3x4 and 3x3 taps share one problem
    # of 4x4 taps by the estimates; a 3x3/2 layer's phases stay apart.
    (stem,) = fastconv.grad.plan_input((8, 3, 224, 224), (64, 3, 7, 7), stride=2, padding=3)
    assert (stem.geometry.out_channels, stem.geometry.kernel_height) == (4 * 3, 4)
    assert len(fastconv.grad.plan_input((8, 64, 56, 56), (64, 64, 3, 3), stride=2,
                                        padding=1)) == 4
    forced = fastconv.grad.plan_input((2, 8, 12, 12), (8, 8, 3, 3), padding=1, method="direct")
    assert [p.method for p in forced] == ["direct"] and forced[0].requested
    (weight,) = fastconv.grad.plan_weight((2, 8, 12, 12), (8, 8, 3, 3), padding=1)
    assert weight.geometry.macs == 2 * 8 * 8 * 12 * 12 * 9  # the forward's multiply-adds
    # Every phase of a stride-3 gradient of a 2-tap kernel: three phases per axis, one meets no
    # tap; the 2 x 2 others have one tap each: one pointwise problem with their 4 outputs.
    (phases,) = fastconv.grad.plan_input((1, 1, 9, 9), (1, 1, 2, 2), stride=3)
    assert (phases.geometry.kernel_height, phases.geometry.out_channels) == (1, 4)
    # U-Net's 2x2/2 transpose: its four single-tap phases as one pointwise problem.
    (unet,) = fastconv.grad.plan_transpose((4, 128, 56, 56), (128, 64, 2, 2), stride=2)
    assert (unet.geometry.kernel_height, unet.geometry.out_channels) == (1, 4 * 64)


@pytest.fixture(params=["shared", "apart"])
def phases(request, monkeypatch):
    """Stride phases forced into shared problems wherever they can share one, or apart."""
    from fastconv import _transpose

    original = _transpose._shared_windows
    shared = request.param == "shared"

    def forced(combinations, kernel, seconds):
        if shared:
            return original(combinations, kernel, lambda problem: float(len(problem[2]) == 1))
        return [_transpose._merged([pieces], kernel) for pieces in combinations]

    monkeypatch.setattr(_transpose, "_shared_windows", forced)
    return request.param


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize(("x_shape", "w_shape", "options"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_shared_and_apart_phases_match_reference(phases, dtype, x_shape, w_shape, options, rng):
    """Phases sharing a problem (zero taps after a phase's own, windows spanning all of
    theirs, groups kept apart in its channels) and phases apart give the same gradients."""
    check_grads("auto", dtype, x_shape, w_shape, rng, **options)


@pytest.mark.parametrize(("x_shape", "w_shape", "options"), [c[1:] for c in TRANSPOSE_CASES],
                         ids=[c[0] for c in TRANSPOSE_CASES])
def test_shared_and_apart_phases_transpose(phases, x_shape, w_shape, options, rng):
    x = rng.standard_normal(x_shape)
    w = rng.standard_normal(w_shape)
    got = fastconv.conv_transpose2d(x, w, **options)
    expected, scale = _transpose_reference(x, w, options)
    assert_close(got, expected, scale, np.float64)


def test_shared_phases_keep_non_finite_values_exact(phases, rng):
    """A zero tap given to a phase multiplies samples it does not read: Inf there would make
    NaN where the gradient has none. Shared problems whose result is not finite run apart."""
    x_shape, w_shape, options = (1, 2, 12, 11), (3, 2, 7, 7), dict(stride=2, padding=3)
    w = rng.standard_normal(w_shape)
    x = rng.standard_normal(x_shape)
    gy = rng.standard_normal(fastconv.conv2d(x, w, **options).shape)
    gy[0, 1, 2, 3] = np.inf
    gy[0, 0, 4, 1] = np.nan
    got = fastconv.grad.conv2d_input(x_shape, w, gy, **options)
    (gx, sx), _ = reference_grads(x_shape, w, x, gy, (2, 2), ((3, 3), (3, 3)), (1, 1), 1,
                                  "zeros")
    np.testing.assert_array_equal(np.isnan(got), np.isnan(gx))
    np.testing.assert_array_equal(np.isinf(got), np.isinf(gx))
    finite = np.isfinite(gx)
    assert_close(np.where(finite, got, 0), np.where(finite, gx, 0), np.where(finite, sx, 0),
                 np.float64)


def test_grad_loads_lazily():
    code = ("import sys, fastconv; assert 'fastconv.grad' not in sys.modules; "
            "fastconv.grad.conv2d_input; assert 'fastconv.grad' in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


RANK_CASES = [
    # id, x shape, w shape, options (the rank is the weight's)
    ("1d-s3-d2-g2", (2, 4, 30), (6, 2, 5), dict(stride=3, padding=2, dilation=2, groups=2)),
    ("1d-sides", (1, 2, 11), (3, 2, 4), dict(stride=2, padding=((3, 1),))),
    ("3d-s2-g3", (2, 3, 9, 8, 7), (6, 1, 3, 3, 3), dict(stride=2, padding=1, groups=3)),
    ("3d-s(2,1,2)-d2", (1, 2, 8, 7, 9), (3, 2, 2, 3, 2),
     dict(stride=(2, 1, 2), dilation=(1, 2, 1), padding=(1, 0, 1))),
]


@pytest.mark.parametrize("padding_mode", ["zeros", "reflect", "circular"])
@pytest.mark.parametrize(("x_shape", "w_shape", "options"), [c[1:] for c in RANK_CASES],
                         ids=[c[0] for c in RANK_CASES])
def test_ranks_1_and_3_match_the_adjoint_and_torch(x_shape, w_shape, options, padding_mode,
                                                   rng):
    """conv{1,3}d_input/_weight satisfy the adjoint identity, and equal torch.autograd where
    torch is installed (zero padding: torch.nn.grad's own case)."""
    rank = len(w_shape) - 2
    forward = getattr(fastconv, f"conv{rank}d")
    x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    y_out = forward(x, w, padding_mode=padding_mode, **options)
    y = rng.standard_normal(y_out.shape)
    gx = getattr(fastconv.grad, f"conv{rank}d_input")(x_shape, w, y, padding_mode=padding_mode,
                                                       **options)
    gw = getattr(fastconv.grad, f"conv{rank}d_weight")(x, w_shape, y, padding_mode=padding_mode,
                                                        **options)
    scale = np.sum(np.abs(forward(abs(x), abs(w), padding_mode=padding_mode, **options)) * abs(y))
    tolerance = 1e-12 * scale
    assert abs(np.sum(y_out * y) - np.sum(x * gx)) <= tolerance
    assert abs(np.sum(y_out * y) - np.sum(w * gw)) <= tolerance
    torch = pytest.importorskip("torch")
    if padding_mode != "zeros":
        return
    xt = torch.from_numpy(x).requires_grad_()
    wt = torch.from_numpy(w).requires_grad_()
    stride, dilation, padding = (options.get(k, d) for k, d in
                                 (("stride", 1), ("dilation", 1), ("padding", 0)))
    if isinstance(padding, tuple) and isinstance(padding[0], tuple):
        pads = [p for pair in reversed(padding) for p in pair]
        xp, padding = torch.nn.functional.pad(xt, pads), 0
    else:
        xp = xt
    conv = getattr(torch.nn.functional, f"conv{rank}d")
    conv(xp, wt, stride=stride, dilation=dilation, padding=padding,
         groups=options.get("groups", 1)).backward(torch.from_numpy(y))
    np.testing.assert_allclose(gx, xt.grad.numpy(), atol=1e-12 * np.abs(gx).max())
    np.testing.assert_allclose(gw, wt.grad.numpy(), atol=1e-12 * np.abs(gw).max())


@pytest.mark.parametrize(("x_shape", "w_shape", "options"), [
    ((2, 4, 9), (4, 3, 3), dict(stride=2, padding=1, output_padding=1)),
    ((1, 4, 3, 4, 5), (4, 2, 2, 3, 2), dict(stride=(2, 1, 3), padding=(0, 1, 1), groups=2)),
], ids=["1d", "3d"])
def test_conv_transpose_1d_3d_match_torch(x_shape, w_shape, options, rng):
    torch = pytest.importorskip("torch")
    rank = len(w_shape) - 2
    x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    expected = getattr(torch.nn.functional, f"conv_transpose{rank}d")(
        torch.from_numpy(x), torch.from_numpy(w), **options).numpy()
    got = getattr(fastconv, f"conv_transpose{rank}d")(x, w, **options)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, atol=1e-12 * np.abs(expected).max())


def test_plans_of_every_rank():
    plans = fastconv.grad.plan_input((2, 3, 10), (4, 3, 3), stride=2)
    assert plans and all(p.reduction is not None for p in plans)
    (weight,) = fastconv.grad.plan_weight((1, 2, 8, 8, 8), (4, 2, 3, 3, 3), padding=1)
    assert weight.method in fastconv.METHODS


# ---------------------------------------------------------------------------------------------
# Errors: type, argument name, expectation and value.

X = np.ones((1, 2, 6, 6))
W = np.ones((3, 2, 3, 3))
GY = np.ones((1, 3, 4, 4))


@pytest.mark.parametrize(("function", "kwargs", "error", "match"), [
    ("input", dict(grad_output=np.ones((1, 3, 5, 5))), ValueError,
     r"`grad_output` must be of shape \(1, 3, 4, 4\) \(the forward output of `input_shape` "
     r"\(1, 2, 6, 6\) and `weight` \(3, 2, 3, 3\)\); got shape \(1, 3, 5, 5\)"),
    ("weight", dict(grad_output=np.ones((3, 4, 4))), ValueError,
     r"`grad_output` must be of shape \(1, 3, 4, 4\) \(the forward output of `input` "),
    ("input", dict(input_shape=(1, 1, 2, 6, 6)), ValueError,
     r"`input_shape` must be 2-D \(spatial\), 3-D \(C, \*spatial\) or 4-D"),
    ("input", dict(input_shape=(1, 2, 6, 6.0)), TypeError, r"`input_shape` must be a tuple of "),
    ("input", dict(input_shape=(1, 2, 0, 6)), ValueError, r"`input_shape` must be a tuple of "
                                                           r"positive ints"),
    ("weight", dict(weight_shape=(3, 2, 3)), ValueError,
     r"`weight_shape` must be 4-D \(out_channels, in_channels/groups, \*k\)"),
    ("weight", dict(weight_shape=(3, 1, 3, 3)), ValueError,
     r"`weight_shape` must be of shape \(out_channels, 2, \*k\) for 2 input channels"),
    ("input", dict(weight=np.ones((3, 2, 7, 7))), ValueError,
     r"`weight` must be no larger \(after dilation\) than the padded input \(6, 6\)"),
    ("input", dict(groups=2), ValueError, r"`groups` must be a positive divisor of "
                                          r"in_channels=2 and out_channels=3; got 2"),
    ("input", dict(groups=1.0), TypeError, r"`groups` must be a positive int; got 1.0"),
    ("input", dict(stride=(1, 2, 3)), TypeError, r"`stride` must be an int or a pair of ints"),
    ("weight", dict(stride=0), ValueError, r"`stride` must be >= 1 \(an int or a pair of ints"),
    ("input", dict(dilation=-1), ValueError, r"`dilation` must be >= 1"),
    ("input", dict(padding=-1), ValueError, r"`padding` must be >= 0"),
    ("input", dict(padding="half"), ValueError, r"`padding` must be an int, a pair, "
                                                r"\(\(top, bottom\), \(left, right\)\) or one of"),
    ("input", dict(padding="same", stride=2), ValueError, r"`stride` must be 1 when "
                                                          r"padding='same'"),
    ("weight", dict(padding_mode="mirror"), ValueError, r"`padding_mode` must be one of"),
    ("input", dict(weight=W.astype(complex)), TypeError, r"`weight` must be real; got dtype "
                                                         r"complex128"),
    ("weight", dict(input=X.astype(object)), TypeError, r"`input` must be a numeric array"),
    ("input", dict(method="fastest"), ValueError, r"`method` must be 'auto', 'measure' or one "
                                                  r"of \('direct'.*; got 'fastest'.*plan_input"),
    ("weight", dict(method="winograd", stride=2), ValueError,
     r"`method` 'winograd' cannot run this problem"),
    ("input", dict(threads=0), ValueError, r"`threads` must be >= 1; got 0\."),
])
def test_grad_errors(function, kwargs, error, match):
    if function == "input":
        arguments = dict(input_shape=X.shape, weight=W, grad_output=GY) | kwargs
        call = fastconv.grad.conv2d_input
    else:
        arguments = dict(input=X, weight_shape=W.shape, grad_output=GY) | kwargs
        call = fastconv.grad.conv2d_weight
    if "stride" in kwargs and "grad_output" not in kwargs and kwargs["stride"] == 2:
        arguments["grad_output"] = np.ones((1, 3, 2, 2))
    with pytest.raises(error, match=match):
        call(**arguments)


XT = np.ones((1, 2, 4, 4))
WT = np.ones((2, 3, 3, 3))


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    (dict(output_padding=2, stride=2), ValueError,
     r"`output_padding` must be smaller than `stride` \(2, 2\) or `dilation` \(1, 1\) on each "
     r"axis \(PyTorch's rule\); got 2"),
    (dict(output_padding=(0, 1)), ValueError, r"`output_padding` must be smaller than"),
    (dict(output_padding=-1), ValueError, r"`output_padding` must be >= 0"),
    (dict(weight=np.ones((3, 3, 3, 3))), ValueError,
     r"`weight` must be of shape \(2, out_channels/groups, \*k\) for 2 input channels "
     r"\(conv_transpose's layout\); got shape \(3, 3, 3, 3\)"),
    (dict(weight=np.ones((2, 3, 3))), ValueError, r"`weight` must be 4-D \(in_channels, "
                                                  r"out_channels/groups, \*k\)"),
    (dict(groups=3), ValueError, r"`groups` must be a positive divisor of in_channels=2; got 3"),
    (dict(padding=3), ValueError, r"`padding` must be small enough to leave an output"),
    (dict(padding=((1, 1), (1, 1))), TypeError, r"`padding` must be an int or a pair of ints"),
    (dict(bias=np.ones(2)), ValueError, r"`bias` must be of shape \(3,\); got shape \(2,\)"),
    (dict(input=XT.astype(complex)), TypeError, r"`input` must be real"),
    (dict(method=fastconv.plan((1, 2, 4, 4), (3, 2, 3, 3))), ValueError,
     r"`method` must be 'auto', 'measure' or one of"),
])
def test_conv_transpose2d_errors(kwargs, error, match):
    arguments = dict(input=XT, weight=WT) | kwargs
    with pytest.raises(error, match=match):
        fastconv.conv_transpose2d(**arguments)


def test_plan_errors():
    with pytest.raises(ValueError, match=r"`method` must be 'auto' or one of"):
        fastconv.grad.plan_weight((1, 2, 6, 6), (3, 2, 3, 3), method="measure")
    with pytest.raises(TypeError, match=r"`dtype` must be a NumPy dtype"):
        fastconv.grad.plan_input((1, 2, 6, 6), (3, 2, 3, 3), dtype="float99")
    with pytest.raises(ValueError, match=r"`weight_shape` must be of shape \(2, out_channels/"):
        fastconv.grad.plan_transpose((1, 2, 6, 6), (3, 2, 3, 3))
