"""conv1d and conv3d (the rank reduction of fastconv/planning/ranks.py) against the N-D SciPy
oracle, for every registered method; plans, chunking, errors and compiled signatures of the new
ranks."""

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from oracle import assert_close, check_conv_nd, reference_conv_nd
from scipy import ndimage, signal

import fastconv
from fastconv._validate import int_tuple, nd_problem, padding_pairs
from fastconv.planning.ranks import ranked, reduce_nd
from fastconv.strategies import REGISTRY

MODES = ["zeros", "reflect", "replicate", "circular", "symmetric"]
DTYPES = [np.float32, np.float64]

# name: (input shape, weight shape, groups)
SHAPES = {
    1: {
        "1x1x9-k3": ((1, 1, 9), (1, 1, 3), 1),
        "2x4x11-groups2-even4": ((2, 4, 11), (6, 2, 4), 2),
        "1x3x7-depthwise": ((1, 3, 7), (3, 1, 3), 3),
        "1x2x5-kernel=input": ((1, 2, 5), (2, 2, 5), 1),
        "1x1x1-length1": ((1, 1, 1), (2, 1, 1), 1),
    },
    3: {
        "1x1x5x6x7-3x3x3": ((1, 1, 5, 6, 7), (2, 1, 3, 3, 3), 1),
        "2x4x4x5x6-groups2-even": ((2, 4, 4, 5, 6), (4, 2, 2, 3, 2), 2),
        "1x2x5x5x5-depthwise": ((1, 2, 5, 5, 5), (2, 1, 3, 3, 3), 2),
        "1x1x3x4x5-kernel=input": ((1, 1, 3, 4, 5), (2, 1, 3, 4, 5), 1),
        "1x2x1x6x1-unit-axes": ((1, 2, 1, 6, 1), (1, 2, 1, 3, 1), 1),
        "2x4x3x4x5-pointwise": ((2, 4, 3, 4, 5), (6, 2, 1, 1, 1), 2),
    },
}
PADDINGS = {
    1: [0, 2, ((1, 3),), "same", "full", ((6, 5),)],
    3: [0, 1, (1, 0, 2), ((1, 0), (0, 2), (2, 1)), "same", "full", ((3, 4), (0, 0), (6, 5))],
}
STRIDES = {1: [1, 2], 3: [1, (2, 1, 3)]}
DILATIONS = {1: [1, 2], 3: [1, (2, 1, 1)]}


def _options(rank, input_shape, weight_shape):
    for padding, stride, dilation in itertools.product(PADDINGS[rank], STRIDES[rank],
                                                       DILATIONS[rank]):
        strides = int_tuple(stride, "stride", 1, rank)
        dilations = int_tuple(dilation, "dilation", 1, rank)
        if padding == "same" and set(strides) != {1}:
            continue
        pad = padding_pairs(padding, weight_shape[2:], strides, dilations)
        if all(d * (k - 1) + 1 <= n + a + b for n, k, d, (a, b) in zip(
                input_shape[2:], weight_shape[2:], dilations, pad, strict=True)):
            yield dict(padding=padding, stride=stride, dilation=dilation)


def _cases():
    return [(rank, case) for rank in SHAPES for case in SHAPES[rank]]


@pytest.mark.parametrize("padding_mode", MODES)
@pytest.mark.parametrize(("rank", "case"), _cases(), ids=[f"{r}d-{c}" for r, c in _cases()])
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("method", fastconv.METHODS)
def test_matches_oracle(method, dtype, rank, case, padding_mode, rng):
    input_shape, weight_shape, groups = SHAPES[rank][case]
    x = rng.standard_normal(input_shape).astype(dtype)
    if method == "separable":  # every (k, c) slice an outer product of one factor per axis
        w = np.ones(weight_shape)
        for axis in range(2, len(weight_shape)):
            shape = [1] * len(weight_shape)
            shape[:2], shape[axis] = weight_shape[:2], weight_shape[axis]
            w = w * rng.standard_normal(shape)
        w = w.astype(dtype)
    else:
        w = rng.standard_normal(weight_shape).astype(dtype)
    bias = rng.standard_normal(weight_shape[0]).astype(dtype)
    checked = 0
    for options in _options(rank, input_shape, weight_shape):
        options.update(groups=groups, padding_mode=padding_mode)
        problem, _ = nd_problem(x, w, bias, rank, options["stride"], options["padding"],
                                options["dilation"], groups, padding_mode)
        reduction = reduce_nd(ranked(problem.geometry, problem.w, method == "separable"),
                              fastconv.get_workspace_budget())
        function = fastconv.conv1d if rank == 1 else fastconv.conv3d
        if REGISTRY[method].declines(reduction.geometry, reduction.budget) is not None:
            with pytest.raises(ValueError, match=f"`method` '{method}' cannot run this problem"):
                function(x, w, bias, method=method, **options)
            continue
        checked += 1
        try:
            check_conv_nd(method, x, w, bias, **options)
        except AssertionError as error:
            raise AssertionError(f"{options}: {error}") from None
    # Winograd runs 3-D kernels that are 3x3 in height and width only (and never 1-D ones);
    # separable runs 3-D kernels whose depth taps' slices are at least 2x2 (rank 1: those of
    # an outer product; a 1-D kernel is one pass already).
    expected = {"winograd": {1: 0, 3: 1}[rank] if weight_shape[-2:] == (3, 3) else 0,
                "separable": 8 if rank == 3 and min(weight_shape[-2:]) >= 2 else 0}
    assert checked >= expected.get(method, 8)


def test_winograd_runs_any_depth_kernel_and_depth_stride(rng):
    # The folded problem is 3x3 whatever kd, the depth stride and the depth dilation.
    x = rng.standard_normal((1, 3, 9, 6, 7))
    w = rng.standard_normal((4, 3, 2, 3, 3))
    check_conv_nd("winograd", x, w, None, stride=(2, 1, 1), dilation=(3, 1, 1), padding=1,
                  padding_mode="reflect")
    with pytest.raises(ValueError, match=r"`method` 'winograd' cannot run this problem: it "
                                         r"computes only 3x3 .*conv3d call runs as 2-D problems "
                                         r"with kernel \(3, 3\), stride \(2, 1\)"):
        fastconv.conv3d(x, w, stride=(1, 2, 1), method="winograd")


@pytest.mark.parametrize("dtype", [np.int32, np.uint8, np.bool_, np.float16])
@pytest.mark.parametrize("rank", [1, 3])
def test_other_dtypes_follow_conv2d(rank, dtype, rng):
    shape = (2, 2, 7) if rank == 1 else (1, 2, 4, 5, 6)
    x = (rng.standard_normal(shape) * 4).astype(dtype)
    w = (rng.standard_normal((3, 2) + (3,) * rank) * 4).astype(dtype)
    compute = fastconv._validate.conv2d_dtype(x, w)
    assert compute == (np.float32 if dtype == np.float16 else np.float64)
    check_conv_nd("direct", x, w, None, padding=1, padding_mode="reflect")
    check_conv_nd("auto", x, w, None, padding="same")


def test_single_channel_forms_1d(rng):
    x, w = rng.standard_normal(10), rng.standard_normal(3)
    got = fastconv.conv1d(x, w, 0.5, padding="full", padding_mode="symmetric")
    pad = ((2, 2),)
    expected = reference_conv_nd(x[None, None], w[None, None], [0.5], padding=pad,
                                 padding_mode="symmetric")[0, 0]
    scale = reference_conv_nd(abs(x[None, None]), abs(w[None, None]), [0.5], padding=pad,
                              padding_mode="symmetric")[0, 0]
    assert_close(got, expected, scale, np.float64)
    batch = rng.standard_normal((3, 10))
    weight = rng.standard_normal((2, 3, 3))
    np.testing.assert_array_equal(fastconv.conv1d(batch, weight),
                                  fastconv.conv1d(batch[None], weight)[0])


def test_single_channel_forms_3d(rng):
    x, w = rng.standard_normal((5, 6, 7)), rng.standard_normal((3, 2, 3))
    got = fastconv.conv3d(x, w, np.float64(2.0), padding=1)
    pad = ((1, 1),) * 3
    expected = reference_conv_nd(x[None, None], w[None, None], [2.0], padding=pad)[0, 0]
    scale = reference_conv_nd(abs(x[None, None]), abs(w[None, None]), [2.0], padding=pad)[0, 0]
    assert_close(got, expected, scale, np.float64)
    volume = rng.standard_normal((2, 4, 5, 6))
    weight = rng.standard_normal((3, 2, 2, 2, 2))
    np.testing.assert_array_equal(fastconv.conv3d(volume, weight),
                                  fastconv.conv3d(volume[None], weight)[0])


# scipy.ndimage.correlate's mode for each padding mode ('same' output, odd kernels).
NDIMAGE_MODES = {"zeros": "constant", "reflect": "mirror", "replicate": "nearest",
                 "circular": "wrap", "symmetric": "reflect"}


@pytest.mark.parametrize("padding_mode", MODES)
def test_volume_matches_ndimage(padding_mode, rng):
    x = rng.standard_normal((6, 7, 8))
    w = rng.standard_normal((3, 5, 3))
    got = fastconv.conv3d(x, w, padding="same", padding_mode=padding_mode)
    expected = ndimage.correlate(x, w, mode=NDIMAGE_MODES[padding_mode])
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("rank", [1, 3])
def test_matches_torch(rank, rng):
    torch = pytest.importorskip("torch")
    function = {1: torch.nn.functional.conv1d, 3: torch.nn.functional.conv3d}[rank]
    x = rng.standard_normal((2, 4) + (9,) * rank)
    w = rng.standard_normal((6, 2) + (3,) * rank)
    bias = rng.standard_normal(6)
    options = dict(stride=2, padding=1, dilation=2, groups=2)
    expected = function(*(torch.from_numpy(a) for a in (x, w, bias)), **options).numpy()
    got = (fastconv.conv1d if rank == 1 else fastconv.conv3d)(x, w, bias, **options)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("method", fastconv.METHODS)
def test_chunks_within_a_tiny_budget(method, rng):
    # Several chunks of output depths, and several images per chunk, give the one-chunk result.
    x = rng.standard_normal((2, 3, 9, 12, 11)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 3, 3)).astype(np.float32)
    bias = rng.standard_normal(4).astype(np.float32)
    for shape, chunks in (((2, 3, 9, 12, 11), 2), ((3, 3, 3, 12, 11), 1)):
        x = rng.standard_normal(shape).astype(np.float32)
        with fastconv.workspace_budget(1 << 16):
            problem, _ = nd_problem(x, w, bias, 3, 1, 1, 1, 1, "circular")
            reduction = reduce_nd(problem.geometry, fastconv.get_workspace_budget())
            assert reduction.chunks > chunks, reduction
            if REGISTRY[method].declines(reduction.geometry, reduction.budget):
                continue
            check_conv_nd(method, x, w, bias, padding=1, padding_mode="circular")


@pytest.mark.parametrize("padding_mode", ["zeros", "reflect", "circular"])
def test_direct_reads_and_writes_depths_in_place_in_chunks(padding_mode, rng):
    # direct reads the depth taps through plane maps (nothing gathered); the maps of 21 output
    # depths fit half of a 64 KiB budget (21 * (32*3 + 64) * 8 bytes), so 41 depths of 2 images
    # run as 4 chunks, the last of each image smaller, every output plane written in place.
    x = rng.standard_normal((2, 32, 40, 4, 5))
    w = rng.standard_normal((64, 16, 3, 2, 2))
    bias = rng.standard_normal(64)
    options = dict(padding=((2, 1), (1, 1), (0, 2)), stride=(1, 1, 2), groups=2,
                   padding_mode=padding_mode)
    problem, _ = nd_problem(x, w, bias, 3, 1, options["padding"], 1, 2, padding_mode)
    in_place = reduce_nd(problem.geometry, 2**16, gathers=False)
    assert (in_place.images, in_place.depths, in_place.chunks) == (1, 21, 4)
    assert "read and written in place" in in_place.text
    with fastconv.workspace_budget(2**16):
        plan = fastconv.plan(x.shape, w.shape, method="direct", dtype=x.dtype, **options)
        assert plan.reduction.gathers is False and plan.remainder is not None
        check_conv_nd("direct", x, w, bias, **options)
    plan = fastconv.plan(x.shape, w.shape, method="direct", dtype=x.dtype, **options)
    assert (plan.reduction.chunks, plan.remainder) == (1, None)


def _flat_plan(x, w, threads=2, **options):
    """The plan of conv3d(x, w, **options) on the FFT with height and width flattened."""
    from fastconv.planning.ranks import _plan_flat

    rank = x.ndim - 2
    problem, _ = nd_problem(x, w, None, rank, options.get("stride", 1),
                            options.get("padding", 0), options.get("dilation", 1),
                            options.get("groups", 1), options.get("padding_mode", "zeros"))
    plan = _plan_flat(problem.geometry, threads)
    assert plan is not None and plan.reduction.flat and plan.method == "fft"
    return plan


@pytest.mark.parametrize("padding_mode", MODES)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_flattened_fft_matches_oracle(dtype, padding_mode, rng):
    # Height and width flattened into one axis: every padding form and mode (wider than the
    # input included), stride and dilation per axis, groups, a batch.
    cases = [
        ((2, 4, 6, 7, 9), (6, 2, 3, 3, 4), dict(padding="same", groups=2)),
        ((1, 3, 5, 8, 6), (3, 1, 2, 3, 3), dict(padding=((2, 1), (9, 3), (1, 8)),
                                                stride=(2, 3, 2), dilation=(1, 2, 3),
                                                groups=3)),
        ((2, 1, 4, 5, 5), (2, 1, 4, 5, 5), dict(padding="full")),
        ((1, 2, 6, 9, 7), (1, 2, 3, 4, 2), dict(stride=(1, 2, 1), dilation=(2, 1, 2))),
    ]
    for input_shape, weight_shape, options in cases:
        options = dict(options, padding_mode=padding_mode)
        x = rng.standard_normal(input_shape).astype(dtype)
        w = rng.standard_normal(weight_shape).astype(dtype)
        bias = rng.standard_normal(weight_shape[0]).astype(dtype)
        plan = _flat_plan(x, w, **options)
        try:
            check_conv_nd(plan, x, w, bias, **options)
        except AssertionError as error:
            raise AssertionError(f"{input_shape} {weight_shape} {options}: {error}") from None
        assert fastconv.last_method() == "fft"


@pytest.mark.parametrize("dtype", [np.complex128, np.int64], ids=lambda d: np.dtype(d).name)
def test_flattened_fft_takes_the_drop_ins_dtypes(dtype, rng):
    # Complex data (real and imaginary parts as channels) and integers (float64, rounded), as
    # the signal drop-ins hand them to the engine, with a constant fill (ndimage's cval).
    from fastconv.core.geometry import NdGeometry
    from fastconv.planning.ranks import _plan_flat, correlate_nd

    x = rng.standard_normal((1, 1, 7, 9, 8)) * 50
    w = rng.standard_normal((1, 1, 3, 4, 3)) * 50
    if np.dtype(dtype).kind == "c":
        x, w = x + 1j * x[..., ::-1], w - 2j * w[..., ::-1]
    x, w = x.astype(dtype), w.astype(dtype)
    padding = ((2, 1), (3, 0), (1, 2))
    nd = NdGeometry(input_shape=x.shape, weight_shape=w.shape, stride=(1, 1, 1),
                    dilation=(1, 1, 1), padding=padding, groups=1, padding_mode="constant",
                    dtype=np.dtype(dtype))
    plan = _plan_flat(nd, 2)
    assert plan.reduction.flat
    got = correlate_nd(x, w, None, (1, 1, 1), (1, 1, 1), padding, method=plan, fill=3)
    padded = np.pad(x[0, 0], padding, constant_values=3)
    # (SciPy conjugates its second argument; the engine takes weights as they are summed.)
    expected = signal.correlate(padded, w[0, 0].conj(), "valid", method="direct")
    assert got.dtype == dtype and fastconv.last_method() == "fft"
    if dtype == np.int64:
        np.testing.assert_array_equal(got[0, 0], expected)
    else:
        np.testing.assert_allclose(got[0, 0], expected, rtol=0,
                                   atol=1e-12 * (np.abs(x).max() + 3) * np.abs(w).sum())


def test_flattened_fft_leaves_non_finite_data_to_direct(rng):
    # The zeros between the kernel's rows would multiply a NaN or Inf into outputs that do not
    # read it: such data and weights run on the folded direct strategy.
    x = rng.standard_normal((1, 2, 6, 7, 8))
    x[0, 1, 3, 2, 2] = np.inf
    x[0, 0, 1, 5, 6] = np.nan
    w = rng.standard_normal((2, 2, 3, 3, 3))
    plan = _flat_plan(x, w, padding=1)
    bad_w = w.copy()
    bad_w[1, 0, 1, 1, 1] = np.nan
    for data, weights in ((x, w), (np.nan_to_num(x), bad_w)):
        got = fastconv.conv3d(data, weights, padding=1, method=plan)
        assert fastconv.last_method() == "direct"
        expected = fastconv.conv3d(data, weights, padding=1, method="direct")
        np.testing.assert_array_equal(got, expected)
        assert np.isnan(got).any() and np.isfinite(got).any()


@pytest.mark.parametrize(("share", "chunking"), [(2, (3, 9, 2)), (8, (1, 5, 10))])
def test_flattened_fft_in_chunks_within_a_tiny_budget(share, chunking, rng):
    # The embedded kernel (8.6 KiB) and a chunk's result (3.8 KiB per output depth, 9 depths)
    # within half of 256 KiB: chunks of 3 and 2 images; within an eighth: chunks of 5 output
    # depths, the last of each image 4 (each remainder its own plan). No depth fitting, or a
    # rank below 3: no flattened reduction.
    from fastconv.planning.ranks import _plan_flat, reduce_flat

    x = rng.standard_normal((5, 2, 8, 12, 10))
    w = rng.standard_normal((3, 2, 3, 5, 5))
    bias = rng.standard_normal(3)
    options = dict(padding=((2, 1), (2, 2), (2, 2)), padding_mode="reflect")
    problem, _ = nd_problem(x, w, None, 3, 1, options["padding"], 1, 1, "reflect")
    with fastconv.workspace_budget(2**18):
        plan = _plan_flat(problem.geometry, 2, shares=(share,))
        reduction = plan.reduction
        assert (reduction.images, reduction.depths, reduction.chunks) == chunking
        assert plan.remainder is not None
        check_conv_nd(plan, x, w, bias, **options)
    assert reduce_flat(problem.geometry, 2**16, 8) is None
    assert reduce_flat(nd_problem(x[:, :, 0], w[:, :, 0], None, 2, 1, 0, 1, 1, "zeros")[0]
                       .geometry, 2**26) is None


def test_pointwise_volumes_run_as_one_row_per_volume(rng):
    # A 1x1x1 kernel at unit stride without padding: one 2-D problem, each volume one row of
    # its voxels (one GEMM per image); with padding or a stride, the depth fold.
    x = rng.standard_normal((2, 6, 5, 7, 9)).astype(np.float32)
    w = rng.standard_normal((8, 3, 1, 1, 1)).astype(np.float32)
    plan = fastconv.plan(x.shape, w.shape, dtype=x.dtype, groups=2)
    assert plan.reduction.pointwise and plan.geometry.height == 1
    assert plan.geometry.width == 5 * 7 * 9 and "pointwise" in repr(plan)
    for method in ("auto", "direct", "im2col", "fft"):
        check_conv_nd(method, x, w, rng.standard_normal(8).astype(np.float32), groups=2)
    for options in (dict(padding=1, groups=2), dict(stride=(1, 2, 1), groups=2)):
        assert not fastconv.plan(x.shape, w.shape, dtype=x.dtype, **options).reduction.pointwise


def test_flattened_fft_picked_for_large_kernels(rng):
    # 'auto' and a forced 'fft' flatten a volume with a large kernel (one transform of all of a
    # plane's points, not one per depth tap); a small kernel stays folded.
    x = rng.standard_normal((1, 1, 40, 40, 40))
    w = rng.standard_normal((1, 1, 15, 15, 15))
    for method in ("auto", "fft"):
        plan = fastconv.plan(x.shape, w.shape, dtype=x.dtype, padding="same", method=method)
        assert plan.reduction.flat, plan
        assert "height and width flattened into one axis" in repr(plan)
    check_conv_nd("auto", x, w, None, padding="same")
    small = fastconv.plan(x.shape, (1, 1, 3, 3, 3), dtype=x.dtype, padding="same")
    assert not small.reduction.flat


def _outer_products(rng, k, kernel, dtype=np.float64):
    """Weights (k, 1, kd, kh, kw), each slice an outer product of random 1-D factors."""
    kd, kh, kw = kernel
    return (rng.standard_normal((k, 1, kd, 1, 1)) * rng.standard_normal((k, 1, 1, kh, 1))
            * rng.standard_normal((k, 1, 1, 1, kw))).astype(dtype)


@pytest.mark.parametrize("padding_mode", MODES)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_outer_product_kernels_run_as_three_passes(dtype, padding_mode, rng):
    # Depthwise (multiplier 2) kernels that are outer products: a depth pass, then each output
    # depth plane's (kh, kw) passes; padding wider than the input, stride and dilation per axis.
    x = rng.standard_normal((2, 3, 7, 9, 8)).astype(dtype)
    w = _outer_products(rng, 6, (4, 3, 5), dtype)
    bias = rng.standard_normal(6).astype(dtype)
    cases = [dict(padding="same"), dict(padding=((9, 2), (1, 0), (3, 11)), stride=(2, 1, 3),
                                        dilation=(2, 3, 1))]
    for options in cases:
        options.update(groups=3, padding_mode=padding_mode)
        plan = fastconv.plan(x.shape, w.shape, weights=w, dtype=dtype, method="separable",
                             **options)
        assert plan.reduction.depth_pass is not None and "three passes" in repr(plan)
        check_conv_nd("separable", x, w, bias, **options)
        check_conv_nd(plan, x, w, bias, **options)


def test_three_passes_in_chunks_within_a_tiny_budget(rng):
    # One channel's intermediate and result fit half of 256 KiB: chunks of channels of one
    # image, the last smaller (its own plans), give the one-chunk result.
    x = rng.standard_normal((2, 5, 12, 16, 16))
    w = _outer_products(rng, 5, (3, 5, 5))
    bias = rng.standard_normal(5)
    options = dict(padding=2, groups=5, padding_mode="reflect")
    with fastconv.workspace_budget(2**18):
        plan = fastconv.plan(x.shape, w.shape, weights=w, dtype=x.dtype, method="separable",
                             **options)
        reduction = plan.reduction
        assert (reduction.images, reduction.channels, reduction.chunks) == (1, 2, 6)
        assert reduction.depth_pass[1] is not None and plan.remainder is not None
        check_conv_nd("separable", x, w, bias, **options)


def test_three_passes_pick_and_price(rng):
    # 'auto' runs a large Gaussian volume as passes (51 multiply-adds per output for 17^3, not
    # 4913); plans made for passes run only weights that are outer products; a constant fill
    # (ndimage's cval) passes the depth pass as fill * sum(depth factor).
    g = np.exp(-np.linspace(-3, 3, 17) ** 2 / 2)
    gauss = g[:, None, None] * np.outer(g, g)
    x = rng.standard_normal((40, 44, 48))
    plan = fastconv.plan(x.shape, gauss.shape, rank=3, padding="same", weights=gauss,
                         dtype=x.dtype)
    assert plan.reduction.depth_pass is not None
    got = fastconv.conv3d(x, gauss, padding="same", method=plan)
    expected = ndimage.correlate(x, gauss, mode="constant")
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12 * np.abs(gauss).sum())
    folded = rng.standard_normal(gauss.shape[:1])[:, None, None] * np.outer(g, g[::-1] + 1)
    folded[1] = np.outer(g + 1, g)  # each slice rank 1, not one outer product of three factors
    with pytest.raises(ValueError, match="`method` must be a Plan made for weights whose slices "
                       "are outer products of a depth, a height and a width factor"):
        fastconv.conv3d(x, folded, padding="same", method=plan)
    from fastconv import ndimage as fastconv_ndimage

    got = fastconv_ndimage.correlate(x, gauss, mode="constant", cval=2.5)
    np.testing.assert_allclose(got, ndimage.correlate(x, gauss, mode="constant", cval=2.5),
                               rtol=0, atol=1e-12 * np.abs(gauss).sum())


def test_three_passes_leave_non_finite_data_to_direct(rng):
    x = rng.standard_normal((1, 1, 12, 13, 14))
    x[0, 0, 5, 6, 7] = np.inf
    x[0, 0, 2, 3, 3] = np.nan
    w = _outer_products(rng, 1, (3, 3, 3))
    w[0, 0, 1] = 0  # a zero depth tap: direct makes 0 * inf = NaN there, as the oracle does
    got = fastconv.conv3d(x, w, padding=1, method="separable")
    expected = fastconv.conv3d(x, w, padding=1, method="direct")
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
    np.testing.assert_array_equal(np.isinf(got), np.isinf(expected))
    finite = np.isfinite(expected)
    np.testing.assert_allclose(got[finite], expected[finite], rtol=0, atol=1e-12)


def test_nd_plans_are_memoised_per_budget():
    # A repeated conv3d call finds its plan (reduction included) instead of planning again; a
    # call under another budget plans its own.
    from fastconv.planning.ranks import plan_nd

    problem, _ = nd_problem(np.ones((1, 2, 40, 6, 7)), np.ones((3, 2, 3, 3, 3)), None, 3, 1, 1,
                            1, 1, "reflect")
    first = plan_nd(problem.geometry, "auto", 2)
    assert plan_nd(problem.geometry, "auto", 2) is first
    with fastconv.workspace_budget(2**16):
        small = plan_nd(problem.geometry, "direct", 2)
        assert small.workspace_budget < first.workspace_budget
        assert plan_nd(problem.geometry, "direct", 2) is small
    assert plan_nd(problem.geometry, "direct", 2) is not small


def test_chunks_are_as_equal_as_they_can_be():
    problem, _ = nd_problem(np.ones((1, 4, 64, 64, 64), np.float32),
                            np.ones((8, 4, 5, 5, 5), np.float32), None, 3, 1, 0, 1, 1, "zeros")
    # One output depth gathers 4*5*64*64 + 8*60*60 floats (435 KiB): 37 fit 16 MiB, 60 needs 2.
    reduction = reduce_nd(problem.geometry, 32 * 2**20)
    assert (reduction.images, reduction.depths, reduction.chunks) == (1, 30, 2)
    assert reduction.budget == 16 * 2**20
    assert "runs as 2 2-D problems of 1 image x 30 output depths" in reduction.text


@pytest.mark.parametrize("method", ["direct", "fft"])
def test_inputs_are_not_modified(method, rng):
    base = rng.standard_normal((2, 2, 6, 7, 8))
    w = rng.standard_normal((3, 2, 3, 3, 3))
    expected = fastconv.conv3d(base, w, padding=1, method=method)
    fortran = np.asfortranarray(base)
    reversed_twice = base[:, :, ::-1, ::-1][:, :, ::-1, ::-1]
    frozen = base.copy()
    frozen.flags.writeable = False
    weight = np.asfortranarray(w)
    for view in (fortran, reversed_twice, frozen):
        before, weight_before = view.copy(), weight.copy()
        got = fastconv.conv3d(view, weight, padding=1, method=method)
        np.testing.assert_allclose(got, expected, rtol=1e-13, atol=1e-13)
        np.testing.assert_array_equal(view, before)
        np.testing.assert_array_equal(weight, weight_before)
    signal_ = rng.standard_normal((2, 3, 40))[:, :, ::2]
    before = signal_.copy()
    fastconv.conv1d(signal_, rng.standard_normal((3, 3, 4)), padding="same", method=method)
    np.testing.assert_array_equal(signal_, before)


def test_plans_show_the_reduction_and_round_trip(rng):
    p1 = fastconv.plan((8, 16, 500), (32, 16, 9), dtype=np.float32, padding=4, rank=1)
    assert p1.geometry.out_shape == (8, 32, 1, 500)
    assert repr(p1).startswith("conv1d: (8, 16, 500) * (32, 16, 9) -> (8, 32, 500) float32")
    assert "unit height axis" in repr(p1)
    x = rng.standard_normal((8, 16, 500)).astype(np.float32)
    w = rng.standard_normal((32, 16, 9)).astype(np.float32)
    np.testing.assert_array_equal(fastconv.conv1d(x, w, padding=4, method=p1),
                                  fastconv.conv1d(x, w, padding=4, method=p1.method))
    p3 = fastconv.plan((2, 3, 8, 9, 10), (4, 3, 3, 3, 3), padding=1)
    assert "depth taps folded into channels" in repr(p3)
    x3, w3 = rng.standard_normal((2, 3, 8, 9, 10)), rng.standard_normal((4, 3, 3, 3, 3))
    np.testing.assert_array_equal(fastconv.conv3d(x3, w3, padding=1, method=p3),
                                  fastconv.conv3d(x3, w3, padding=1, method=p3.method))
    with pytest.raises(ValueError, match=r"`method` must be a Plan made for this call's problem; "
                                         r"the plan is for conv3d: \(2, 3, 8, 9, 10\)"):
        fastconv.conv3d(x3, w3, padding=2, method=p3)
    with pytest.raises(ValueError, match=r"the plan is for a conv2d call, the call needs conv1d"):
        fastconv.conv1d(x, w, method=fastconv.plan((8, 16, 1, 500), (32, 16, 1, 9)))
    assert fastconv.plan((16, 500), (32, 16, 9)) == fastconv.plan((1, 16, 500), (32, 16, 9),
                                                                  rank=1)
    for method in fastconv.METHODS:
        if method not in ("winograd", "separable"):  # both decline 1-D problems
            assert fastconv.plan((16, 50), (4, 16, 3), method=method).method == method


def test_measure_runs_every_rank(rng):
    x = rng.standard_normal((1, 2, 5, 6, 7))
    w = rng.standard_normal((3, 2, 3, 3, 3))
    expected = fastconv.conv3d(x, w, padding=1, method="direct")
    np.testing.assert_allclose(fastconv.conv3d(x, w, padding=1, method="measure"), expected,
                               rtol=1e-9, atol=1e-9)


def test_new_ranks_compile_no_new_signatures(rng):
    # Ranks 1 and 3 reuse the 2-D kernels' signatures: no compilation after a 2-D call.
    from fastconv.strategies.direct.kernels import correlate_direct, correlate_direct_serial

    def signatures():
        return {(kernel.__name__, signature) for kernel in (correlate_direct,
                correlate_direct_serial) for signature in kernel.signatures}

    fastconv.conv2d(np.ones((1, 2, 6, 6)), np.ones((2, 2, 3, 3)), method="direct")
    before = signatures()
    fastconv.conv1d(rng.standard_normal((2, 3, 20)), rng.standard_normal((4, 3, 5)),
                    padding=2, method="direct")
    fastconv.conv3d(rng.standard_normal((1, 2, 5, 6, 7)), rng.standard_normal((2, 2, 3, 3, 3)),
                    padding=1, padding_mode="reflect", method="direct")
    assert signatures() == before
    # Whatever compiled earlier in the session: conv3d's plane maps (input and output) are of
    # the one type of the 2-D calls' cached maps, so no dtype has a second signature for them.
    maps = {signature[i] for _, signature in signatures() for i in (1, -1)}
    assert len(maps) == 1 and not next(iter(maps)).mutable, maps


@st.composite
def nd_problems(draw):
    rank = draw(st.sampled_from([1, 3]))
    groups = draw(st.integers(1, 2))
    cg, kg = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    kernel = tuple(draw(st.integers(1, 4)) for _ in range(rank))
    dilation = tuple(draw(st.integers(1, 2)) for _ in range(rank))
    padding = tuple((draw(st.integers(0, 3)), draw(st.integers(0, 3))) for _ in range(rank))
    limit = 24 if rank == 1 else 7
    spatial = tuple(draw(st.integers(max(1, d * (k - 1) + 1 - a - b), limit))
                    for k, d, (a, b) in zip(kernel, dilation, padding, strict=True))
    return dict(
        input_shape=(draw(st.integers(1, 2)), cg * groups, *spatial),
        weight_shape=(kg * groups, cg, *kernel),
        options=dict(groups=groups, padding=padding, dilation=dilation,
                     stride=tuple(draw(st.integers(1, 3)) for _ in range(rank)),
                     padding_mode=draw(st.sampled_from(MODES))),
        dtype=draw(st.sampled_from(DTYPES)),
        seed=draw(st.integers(0, 2**32 - 1)),
    )


@settings(max_examples=40, deadline=None)
@given(problem=nd_problems(), method=st.sampled_from(fastconv.METHODS))
def test_property_matches_oracle(problem, method):
    rng = np.random.default_rng(problem["seed"])
    x = rng.standard_normal(problem["input_shape"]).astype(problem["dtype"])
    w = rng.standard_normal(problem["weight_shape"]).astype(problem["dtype"])
    bias = rng.standard_normal(problem["weight_shape"][0]).astype(problem["dtype"])
    rank = x.ndim - 2
    o = problem["options"]
    nd, _ = nd_problem(x, w, bias, rank, o["stride"], o["padding"], o["dilation"], o["groups"],
                       o["padding_mode"])
    if REGISTRY[method].declines(reduce_nd(nd.geometry, fastconv.get_workspace_budget()).geometry,
                                fastconv.get_workspace_budget()):
        method = "auto"
    check_conv_nd(method, x, w, bias, **o)


X1, W1 = np.ones((1, 2, 8)), np.ones((3, 2, 3))
X3, W3 = np.ones((1, 2, 5, 5, 5)), np.ones((3, 2, 3, 3, 3))


@pytest.mark.parametrize(
    ("rank", "kwargs", "error", "match"),
    [
        (1, dict(weight=np.ones((3, 2, 3, 3))), ValueError,
         r"`weight` must be 3-D \(out_channels, in_channels/groups, k\) for conv1d; got shape "
         r"\(3, 2, 3, 3\)"),
        (1, dict(input=np.ones(8)), ValueError, r"`weight` must be 1-D \(k,\) for a 1-D input of "
                                                r"conv1d; got shape \(3, 2, 3\)"),
        (1, dict(input=np.ones((1, 1, 2, 8))), ValueError,
         r"`input` must be 1-D \(L,\), 2-D \(C, L\) or 3-D \(N, C, L\) for conv1d; got shape"),
        (3, dict(weight=np.ones((3, 2, 3, 3))), ValueError,
         r"`weight` must be 5-D \(out_channels, in_channels/groups, kd, kh, kw\) for conv3d"),
        (3, dict(input=np.ones((5, 5, 5))), ValueError,
         r"`weight` must be 3-D \(kd, kh, kw\) for a 3-D input of conv3d; got shape"),
        (3, dict(input=np.ones((5, 5))), ValueError,
         r"`input` must be 3-D \(D, H, W\), 4-D \(C, D, H, W\) or 5-D \(N, C, D, H, W\) for "
         r"conv3d; got shape \(5, 5\)"),
        (3, dict(input=np.ones((1, 2, 0, 5, 5))), ValueError, r"`input` must be non-empty"),
        (3, dict(weight=np.ones((3, 2, 3, 0, 3))), ValueError, r"`weight` must be non-empty"),
        (3, dict(weight=np.ones((3, 1, 3, 3, 3))), ValueError,
         r"`weight` must be of shape \(out_channels, 2, kd, kh, kw\) for 2 input channels and "
         r"groups=1"),
        (1, dict(weight=np.ones((3, 1, 3))), ValueError,
         r"`weight` must be of shape \(out_channels, 2, k\)"),
        (3, dict(groups=2), ValueError, r"`groups` must be a positive divisor of in_channels=2 "
                                        r"and out_channels=3; got 2"),
        (1, dict(groups=1.0), TypeError, r"`groups` must be a positive int; got 1.0"),
        (3, dict(input=X3.astype(complex)), TypeError,
         r"`input` must be real \(conv3d is a deep-learning layer\).*scipy.signal.correlate"),
        (1, dict(bias=np.ones(2)), ValueError, r"`bias` must be of shape \(3,\); got shape"),
        (1, dict(bias=np.ones(3, complex)), TypeError, r"`bias` must be real"),
        (3, dict(stride=(1, 2)), TypeError, r"`stride` must be an int or a tuple of 3 ints; got "
                                            r"\(1, 2\)"),
        (3, dict(stride=(1, 0, 1)), ValueError, r"`stride` must be >= 1 \(an int or a tuple of 3 "
                                                r"ints\); got \(1, 0, 1\)"),
        (1, dict(stride=True), TypeError, r"`stride` must be an int or a tuple of 1 ints"),
        (1, dict(dilation=0), ValueError, r"`dilation` must be >= 1"),
        (1, dict(padding=(1, 2)), TypeError,
         r"`padding` must be an int or a tuple of 1 ints; got \(1, 2\)\. Write \(\(left, "
         r"right\),\)"),
        (3, dict(padding=((1, 1), (1, -1), (0, 0))), ValueError, r"`padding` must be >= 0"),
        (3, dict(padding=-1), ValueError, r"`padding` must be >= 0 \(an int or a tuple of 3"),
        (3, dict(padding="half"), ValueError,
         r"`padding` must be an int, a tuple of 3 ints, 3 \(before, after\) pairs or one of "
         r"\('valid', 'same', 'full'\); got 'half'"),
        (1, dict(padding="same", stride=2), ValueError, r"`stride` must be 1 when padding='same'"),
        (3, dict(padding_mode="mirror"), ValueError, r"`padding_mode` must be one of"),
        (1, dict(method="winograd"), ValueError,
         r"`method` 'winograd' cannot run this problem: it computes only 3x3 kernels .*the "
         r"conv1d call runs as 2-D problems with kernel \(1, 3\)"),
        (3, dict(method="fastest"), ValueError, r"`method` must be 'auto' or one of"),
        (3, dict(threads=0), ValueError, r"`threads` must be >= 1; got 0\."),
        (3, dict(weight=np.ones((3, 2, 7, 3, 3))), ValueError,
         r"`weight` must be no larger \(after dilation\) than the padded input \(5, 5, 5\); got "
         r"dilated kernel size \(7, 3, 3\)"),
        (1, dict(dilation=4), ValueError, r"got dilated kernel size \(9,\)"),
    ],
)
def test_errors(rank, kwargs, error, match):
    x, w = (X1, W1) if rank == 1 else (X3, W3)
    function = fastconv.conv1d if rank == 1 else fastconv.conv3d
    arguments = dict(input=x, weight=w) | kwargs
    with pytest.raises(error, match=match):
        function(**arguments)


def test_shape_only_errors():
    with pytest.raises(ValueError, match=r"`rank` must be given when both shapes are 3-D"):
        fastconv.output_shape((8, 4, 100), (4, 4, 3))
    with pytest.raises(ValueError, match=r"`rank` must be given when both shapes are 3-D"):
        fastconv.plan((8, 4, 100), (4, 4, 3))
    with pytest.raises(ValueError, match=r"`rank` must be None, 1, 2 or 3; got 4"):
        fastconv.output_shape((8, 4, 100), (4, 4, 3), rank=4)
    with pytest.raises(ValueError, match=r"`input_shape` and `weight_shape` must be \(D, H, W\) "
                                         r"and \(kd, kh, kw\), or"):
        fastconv.output_shape((2, 4, 8, 8, 8), (4, 4, 3), rank=3)
    with pytest.raises(ValueError, match=r"`weight_shape` must fit the padded input"):
        fastconv.output_shape((4, 4, 4), (5, 3, 3), rank=3)
    with pytest.raises(TypeError, match=r"`stride` must be an int or a tuple of 1 ints"):
        fastconv.output_shape((4, 10), (2, 4, 3), stride=(1, 1))
    with pytest.raises(TypeError, match=r"`dtype` must be real for conv3d; got complex128"):
        fastconv.plan((1, 2, 4, 4, 4), (2, 2, 3, 3, 3), dtype=complex)
    with pytest.raises(ValueError, match=r"`weight_shape` must be of shape \(out_channels, 2, k\)"):
        fastconv.plan((1, 2, 40), (2, 1, 3), rank=1)


def test_output_shape_every_rank():
    assert fastconv.output_shape((8, 3, 100), (5, 3, 4), padding="same", rank=1) == (8, 5, 100)
    assert fastconv.output_shape((100,), (4,), padding="full") == (103,)
    assert fastconv.output_shape((3, 10, 11, 12), (5, 3, 3, 3, 3), stride=(1, 2, 3)) == (5, 8, 5, 4)
    assert fastconv.output_shape((9, 9, 9), (3, 3, 3), dilation=(1, 2, 3), rank=3) == (7, 5, 3)
