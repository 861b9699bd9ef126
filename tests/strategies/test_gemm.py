"""The LLVM-IR GEMM micro-kernel (fastconv/strategies/im2col/gemm.py) and the im2col paths that
run it (correlate_implicit, correlate_pointwise_implicit, their packed weights): the kernel
against NumPy at both vector widths, its register tile in the assembly, and the paths against
the oracle on edges (sizes not multiples of the tiles, every padding mode, dilation, groups,
channel chunks, threads, budgets)."""

import os
import re
import subprocess
import sys
import textwrap
import tracemalloc

import numba
import numpy as np
import pytest
from oracle import check_conv2d, random_layer

import fastconv
from fastconv.core import target as _target
from fastconv.core.geometry import PADDING_MODES, Geometry
from fastconv.strategies.im2col import gemm, kernels, runner


def _run_kernel(kernel, rows, vectors, lanes, depth, dtype, accumulate, rng):
    """One call of ``kernel`` on random operands, and the expected C (float64)."""
    width = vectors * lanes
    x = rng.standard_normal(200 + depth * 7).astype(dtype)
    offsets = rng.permutation(depth * 7)[:depth].astype(np.int64)
    w = rng.standard_normal(depth * width + 3).astype(dtype)
    ldc = width + 5
    c = rng.standard_normal(rows * ldc + 9).astype(dtype)
    before = c.copy()
    kernel(depth, w, 3, x, 2, offsets, 0, c, 4, ldc, accumulate)
    pixels = np.stack([x[2 + offsets + r] for r in range(rows)]).astype(np.float64)
    update = pixels @ w[3:].reshape(depth, width).astype(np.float64)
    expected = before.astype(np.float64)
    tile = expected[4:4 + rows * ldc].reshape(rows, ldc)
    tile[:, :width] = update + (tile[:, :width] if accumulate else 0)
    return c, expected


@pytest.mark.parametrize("accumulate", [0, 1])
@pytest.mark.parametrize("depth", [1, 5, 96])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("bits", [256, 512])
def test_microkernel_matches_numpy(bits, dtype, depth, accumulate, rng):
    """The 256-bit tile is what CPUs without AVX-512 compile: checked here too (AVX-512 hosts
    run it)."""
    if bits == 512 and gemm.VECTOR_BITS < 512:
        pytest.skip("host without AVX-512")
    tiles = {4: (12, 2), 8: (6, 4)} if bits == 512 else {4: (6, 2), 8: (6, 2)}
    rows, vectors = tiles[np.dtype(dtype).itemsize]
    kernel = gemm.make_microkernel(tiles, bits)

    @numba.njit
    def call(depth, w, w_offset, x, x_offset, offsets, d0, c, c_offset, ldc, accumulate):
        kernel(depth, w, w_offset, x, x_offset, offsets, d0, c, c_offset, ldc, accumulate)

    lanes = bits // (8 * np.dtype(dtype).itemsize)
    c, expected = _run_kernel(call, rows, vectors, lanes, depth, dtype, accumulate, rng)
    tolerance = 1e-5 if dtype == np.float32 else 1e-13
    np.testing.assert_allclose(c, expected, rtol=tolerance, atol=tolerance * depth)


def test_microkernel_keeps_its_tile_in_registers():
    """Packed FMAs on the target's widest registers (zmm with AVX-512, else ymm) and no stack
    traffic (spills) in any loop of the micro-kernel, for both dtypes. LLVM may unroll the loop
    (twice for znver4, not for skylake-avx512), so each loop holds a whole number of steps of
    rows x vectors FMAs.
    tests/test_targets.py runs this for several NUMBA_CPU_NAME targets."""
    if not _target.has("fma"):
        pytest.skip("target without FMA")

    @numba.njit
    def call(depth, w, x, offsets, c):
        gemm.microkernel(depth, w, 0, x, 0, offsets, 0, c, 0, 64, 1)

    register = "zmm" if gemm.VECTOR_BITS == 512 else "ymm"
    for dtype in (np.float32, np.float64):
        call(2, np.ones(128, dtype), np.ones(16, dtype), np.zeros(2, np.int64),
             np.zeros(1024, dtype))
    for signature, (bits, suffix) in zip(call.signatures, ((32, "ps"), (64, "pd")), strict=True):
        rows, vectors = gemm.TILES[bits // 8]
        asm = call.inspect_asm(signature)
        name = f"fastconv_gemm_f{bits}_{rows}x{vectors}_{gemm.VECTOR_BITS}"
        body = re.search(rf"\n{name}:(.*?)\.Lfunc_end", asm, re.S).group(1)
        loops = [loop for _, loop in
                 re.findall(r"\n(\.LBB\w+):\n(.*?)\n\s*j\w+\s+\1\n", body, re.S)]
        counts = [len(re.findall(rf"vfmadd\w+{suffix}\s+[^\n]*%{register}", loop))
                  for loop in loops]
        assert counts and all(count > 0 and count % (rows * vectors) == 0 for count in counts), (
            bits, counts)
        assert not any("rsp" in loop for loop in loops), bits


def _host_target_env():
    return {key: value for key, value in os.environ.items()
            if key not in ("NUMBA_CPU_NAME", "NUMBA_CPU_FEATURES")}


def test_whole_path_at_256_bits():
    """The implicit path as a CPU without AVX-512 compiles it (6 x 2 tile, 16-channel fp32
    panels), in a subprocess that hides avx512f from gemm.py; without the cache, whose key is
    the real host. The host's features are hidden, so the target is the host (no
    NUMBA_CPU_NAME or NUMBA_CPU_FEATURES, which tests/test_targets.py sets)."""
    code = """
        import llvmlite.binding as binding
        features = binding.get_host_cpu_features()
        features["avx512f"] = False
        binding.get_host_cpu_features = lambda: features
        import numpy as np, fastconv
        from fastconv.core.geometry import Geometry
        from fastconv.strategies.im2col import gemm, kernels, runner
        assert (gemm.VECTOR_BITS, gemm.TILES) == (256, {4: (6, 2), 8: (6, 2)})
        rng = np.random.default_rng(0)
        for dtype in (np.float32, np.float64):
            x = rng.standard_normal((2, 20, 9, 13)).astype(dtype)
            w = rng.standard_normal((32, 20, 3, 3)).astype(dtype)
            geometry = Geometry(2, 20, 9, 13, 32, 3, 3, (1, 1, 1, 1), (1, 1), (1, 1), 1,
                                "reflect", np.dtype(dtype))
            assert runner.implicit_tiling(geometry, 1, 2**26) is not None
            got = fastconv.conv2d(x, w, padding=1, padding_mode="reflect", method="im2col")
            expected = fastconv.conv2d(x, w, padding=1, padding_mode="reflect", method="direct")
            print(float(abs(got - expected).max() / abs(expected).max()))
        """
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                            text=True, cwd=root,
                            env=_host_target_env() | {"FASTCONV_NO_CACHE": "1"}, timeout=600)
    assert result.returncode == 0, result.stderr
    errors = [float(line) for line in result.stdout.split()]
    assert errors[0] < 1e-5 and errors[1] < 1e-12, errors


def _check(x, w, bias, **options):
    check_conv2d("im2col", x, w, bias, **options)


def _count_calls(retune, kernel, forced=None):
    """The output shapes of the calls of the im2col runner's ``kernel``, collected as they
    happen; with ``forced``, that predicate of the runner says yes to every layer."""
    if forced is not None:
        retune(runner, forced, lambda geometry: True)
    calls = []
    original = getattr(kernels, kernel)

    def spy(*args):
        calls.append(args[-1].shape)
        return original(*args)

    spy.original = original

    retune(kernels, kernel, spy)
    return calls


@pytest.fixture
def implicit(retune):
    """Every stride-1 float layer takes the implicit GEMM (whatever implicit_pays measured), and
    the calls are counted."""
    return _count_calls(retune, "correlate_implicit", forced="implicit_pays")


# name: (input shape, weight shape, options). Output channels 1, 5, 13, 70: partial weight
# panels; widths 1, 7, 31: pixel tiles cut anywhere; dilation; wide padding (index maps).
CASES = {
    "same-3x3": ((2, 5, 9, 11), (13, 5, 3, 3), dict(padding="same")),
    "valid-4x2": ((1, 3, 8, 10), (5, 3, 4, 2), dict(padding=0)),
    "dilated-same": ((1, 4, 10, 9), (2, 4, 3, 3), dict(padding="same", dilation=(2, 3))),
    "wide-padding": ((1, 2, 4, 5), (3, 2, 3, 2), dict(padding=((5, 6), (7, 3)))),
    "width-1": ((2, 3, 7, 1), (70, 3, 3, 3), dict(padding=1)),
    "one-row": ((1, 6, 1, 31), (1, 6, 1, 5), dict(padding=(0, 2))),
}


@pytest.mark.parametrize("padding_mode", PADDING_MODES)
@pytest.mark.parametrize("case", list(CASES))
def test_implicit_gemm_matches_oracle(case, padding_mode, implicit, rng):
    input_shape, weight_shape, options = CASES[case]
    for dtype in (np.float32, np.float64):
        x, w, bias = random_layer(rng, input_shape, weight_shape, dtype)
        _check(x, w, bias, padding_mode=padding_mode, **options)
    assert len(implicit) == 2


def test_implicit_gemm_fill_value(implicit, rng):
    """correlate2d's fillvalue is the constant of the padded strip."""
    from scipy import signal

    for dtype in (np.float32, np.float64):
        image = rng.standard_normal((23, 17)).astype(dtype)
        kernel = rng.standard_normal((4, 3)).astype(dtype)
        got = fastconv.correlate2d(image, kernel, "full", fillvalue=2.5, method="im2col")
        expected = signal.correlate2d(image, kernel, "full", fillvalue=2.5)
        tolerance = 1e-4 if dtype == np.float32 else 1e-12
        np.testing.assert_allclose(got, expected, rtol=tolerance, atol=tolerance)
    assert len(implicit) == 2


def test_implicit_gemm_shorter_last_row_tile(implicit, rng):
    """A shorter last row tile: the strip's rows past it hold the rows of the tile before, and
    its last row's right padding is read from the next one's left (rows sharing padding)."""
    x, w, bias = random_layer(rng, (1, 16, 11, 40), (64, 16, 3, 3), np.float32)
    geometry = Geometry(1, 16, 11, 40, 64, 3, 3, (1, 1, 1, 1), (1, 1), (1, 1), 1, "zeros",
                        np.dtype(np.float32))
    assert runner.implicit_row_stride(geometry) == 41
    rows = runner.implicit_tiling(geometry, 1, 64 * 2**20).rows
    assert 11 % rows != 0, rows
    _check(x, w, bias, padding=1, threads=1)
    assert len(implicit) == 1


def test_implicit_gemm_weights_major(retune, implicit, rng):
    """Each thread's share of the output channels over every tile (any weights outgrow the split
    size here): several panels over two threads, groups, channel chunks under a small budget."""
    threads = 2
    if threads > numba.config.NUMBA_NUM_THREADS:
        pytest.skip("needs 2 Numba threads")
    retune(runner, "WEIGHT_SPLIT_BYTES", 0)
    layers = [((2, 8, 9, 11), (192, 8, 3, 3), {}), ((3, 12, 7, 6), (256, 6, 3, 3), {"groups": 2}),
              ((2, 40, 6, 300), (128, 40, 3, 3), {"padding_mode": "reflect"})]
    with fastconv.workspace_budget(2**20):
        for input_shape, weight_shape, options in layers:
            x, w, bias = random_layer(rng, input_shape, weight_shape, np.float32)
            n, c, h, width = input_shape
            geometry = Geometry(n, c, h, width, weight_shape[0], 3, 3, (1, 1, 1, 1), (1, 1),
                                (1, 1), options.get("groups", 1),
                                options.get("padding_mode", "zeros"), np.dtype(np.float32))
            assert runner.implicit_tiling(geometry, threads, 2**20).weights_major
            _check(x, w, bias, padding=1, threads=threads, **options)
    assert len(implicit) == 3


def test_implicit_gemm_splits_large_weights_over_threads():
    """weights_major where a group's packed weights outgrow WEIGHT_SPLIT_BYTES and there are
    several tiles, with equal channel blocks."""
    def tiling(n, c, k, size, threads=2):
        geometry = Geometry(n, c, size, size, k, 3, 3, (1, 1, 1, 1), (1, 1), (1, 1), 1, "zeros",
                            np.dtype(np.float32))
        return runner.implicit_tiling(geometry, threads, 64 * 2**20)

    assert (tiling(8, 256, 256, 14).weights_major, tiling(8, 256, 256, 14).k_block) == (True, 128)
    panel = gemm.panel_width(4)
    # Six panels split in halves; seven panels do not split evenly: one panel per block.
    assert tiling(8, 192, 192, 28).k_block == 192 // panel // 2 * panel
    assert tiling(8, 7 * panel, 7 * panel, 28).k_block == panel
    assert not tiling(8, 128, 128, 28).weights_major
    assert not tiling(8, 256, 256, 14, threads=1).weights_major


@pytest.mark.parametrize("groups", [2, 3, 6])
def test_implicit_gemm_groups(groups, implicit, rng):
    x = rng.standard_normal((2, 6, 9, 8)).astype(np.float32)
    w = rng.standard_normal((12, 6 // groups, 3, 3)).astype(np.float32)
    bias = rng.standard_normal(12).astype(np.float32)
    _check(x, w, bias, groups=groups, padding=1, padding_mode="replicate")
    _check(x, w[:, :, :2], bias, groups=groups, padding="same", dilation=2)
    assert len(implicit) == 2


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("budget", [2**20, 2**22, 64 * 2**20])
def test_implicit_gemm_under_small_budgets(budget, threads, implicit, rng):
    """Rows too wide for all channels in a cached strip: channels in chunks, one output row per
    tile; several threads, a batch of one."""
    if threads > numba.config.NUMBA_NUM_THREADS:
        pytest.skip("needs 2 Numba threads")
    x = rng.standard_normal((2, 40, 5, 700)).astype(np.float32)
    w = rng.standard_normal((72, 40, 3, 3)).astype(np.float32)
    bias = rng.standard_normal(72).astype(np.float32)
    geometry = Geometry(2, 40, 5, 700, 72, 3, 3, (1, 1, 1, 1), (1, 1), (1, 1), 1, "zeros",
                        np.dtype(np.float32))
    tiling = runner.implicit_tiling(geometry, threads, budget)
    assert tiling.chunk < 40 and tiling.rows == 1
    with fastconv.workspace_budget(budget):
        _check(x, w, bias, padding=1, padding_mode="reflect", threads=threads)
        _check(x[:1], w, bias, padding=1, threads=threads)
    assert len(implicit) == 2


@pytest.mark.parametrize("threads", [1, 2, 7])
@pytest.mark.parametrize("budget", [2**16, 2**20, 64 * 2**20])
@pytest.mark.parametrize(
    "shape",
    [
        ((8, 64, 56, 56), (64, 64, 3, 3), (1, 1, 1, 1)),
        ((1, 512, 7, 7), (512, 512, 3, 3), (1, 1, 1, 1)),
        ((1, 8, 5, 4000), (64, 8, 9, 9), (4, 4, 4, 4)),
        ((1, 2048, 3, 3), (64, 2048, 3, 3), (0, 0, 0, 0)),
    ],
)
def test_implicit_tilings_stay_within_budget(shape, budget, threads):
    (n, c, h, w), (k, cg, kh, kw), pad = shape
    for dtype in (np.float32, np.float64):
        geometry = Geometry(n, c, h, w, k, kh, kw, pad, (1, 1), (1, 1), c // cg, "zeros",
                            np.dtype(dtype))
        tiling = runner.implicit_tiling(geometry, threads, budget)
        if tiling is None:
            continue
        used = runner.implicit_fixed_bytes(geometry) + (
            np.prod(tiling.strips_shape(geometry)) + np.prod(tiling.tiles_shape(geometry))
        ) * np.dtype(dtype).itemsize
        assert used <= budget, tiling
        assert 1 <= tiling.slots <= threads
        assert tiling.k_block % gemm.panel_width(np.dtype(dtype).itemsize) == 0


def test_implicit_gemm_peak_memory_is_output_plus_budget(implicit, rng):
    """Every buffer of the implicit path (packed weights, offsets, strips, tiles) is counted."""
    x = rng.standard_normal((2, 96, 40, 40)).astype(np.float32)
    w = rng.standard_normal((128, 96, 3, 3)).astype(np.float32)
    fastconv.conv2d(x[:1, :, :8, :8], w, padding=1, method="im2col")  # compile outside
    budget = 2**20
    with fastconv.workspace_budget(budget):
        tracemalloc.start()
        try:
            out = fastconv.conv2d(x, w, padding=1, method="im2col")
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert len(implicit) == 2
    # Python's own bookkeeping (array headers, the plan) is a few KiB.
    assert peak - out.nbytes <= budget + 2**16, (peak - out.nbytes) / 2**20
    np.testing.assert_allclose(out, fastconv.conv2d(x, w, padding=1, method="direct"),
                               rtol=1e-4, atol=1e-3)


def test_implicit_gemm_only_where_it_measured_faster():
    def geometry(c, k, kh, stride=1, dtype=np.float32):
        return Geometry(8, c, 56, 56, k, kh, kh, (1, 1, 1, 1), (stride, stride), (1, 1), 1,
                        "zeros", np.dtype(dtype))

    assert runner.implicit_tiling(geometry(64, 64, 3), 1, 64 * 2**20) is not None
    assert runner.implicit_tiling(geometry(64, 96, 3, dtype=np.float64), 1, 64 * 2**20)
    assert runner.implicit_tiling(geometry(64, 96, 3), 1, 64 * 2**20)
    assert runner.implicit_tiling(geometry(32, 32, 3), 1, 64 * 2**20)
    for declined in (geometry(3, 64, 3), geometry(64, 48, 3), geometry(64, 64, 3, stride=2),
                     geometry(64, 64, 3, dtype=np.complex64)):
        assert runner.implicit_tiling(declined, 1, 64 * 2**20) is None
    # Not even one output row fits: BLAS, which tiles columns too.
    assert runner.implicit_tiling(geometry(64, 64, 3), 1, 2**16) is None


def test_implicit_signatures_stay_closed(rng):
    from fastconv.strategies.im2col.kernels import correlate_implicit

    x = rng.standard_normal((1, 16, 9, 10))
    for dtype in (np.float32, np.float64):
        view = x.astype(dtype)[:, :, ::-1, ::2]
        fastconv.conv2d(view, np.ones((64, 16, 3, 3), dtype), padding=1, method="im2col")
        fastconv.conv2d(view, np.ones((64, 16, 3, 3), dtype), padding=1, method="im2col",
                        padding_mode="reflect")
    kinds = {str(signature[0]) for signature in correlate_implicit.signatures}
    assert len(correlate_implicit.signatures) == len(kinds) <= 4, correlate_implicit.signatures


@pytest.fixture
def pointwise(retune):
    """Every pointwise float layer takes the micro-kernel (whatever pointwise_implicit_pays
    measured), and the calls are counted."""
    return _count_calls(retune, "correlate_pointwise_implicit", forced="pointwise_implicit_pays")


# (input shape, output channels, groups). 13 and 70 channels: partial weight panels; 7x11, 5x1
# and 31x29 pixels: tiles and micro-kernel blocks cut anywhere; a batch of one; groups.
POINTWISE_CASES = [
    ((2, 5, 7, 11), 13, 1),
    ((1, 6, 5, 1), 70, 1),
    ((1, 3, 31, 29), 64, 1),
    ((3, 8, 9, 10), 12, 2),
    ((2, 12, 6, 7), 12, 12),
]


@pytest.mark.parametrize("case", POINTWISE_CASES, ids=str)
def test_pointwise_micro_kernel_matches_oracle(case, pointwise, rng):
    input_shape, out_channels, groups = case
    weight_shape = (out_channels, input_shape[1] // groups, 1, 1)
    for dtype in (np.float32, np.float64):
        x, w, bias = random_layer(rng, input_shape, weight_shape, dtype)
        _check(x, w, bias, groups=groups)
        _check(x[:, :, ::-1, ::2], w, bias, groups=groups)
    assert len(pointwise) == 4


def test_pointwise_micro_kernel_where_it_measured_faster(retune, rng):
    """Without forcing: a ResNet bottleneck's 256->64 layer on 56x56 takes it; 14x14 images,
    fewer than IMPLICIT_DEPTH input channels, more outputs than inputs, partial panels and
    complex data take BLAS."""
    def geometry(c, k, side, dtype=np.float32, groups=1):
        return Geometry(2, c, side, side, k, 1, 1, (0, 0, 0, 0), (1, 1), (1, 1), groups,
                        "zeros", np.dtype(dtype))

    budget = 64 * 2**20
    assert runner.pointwise_implicit_tiling(geometry(256, 64, 56), 2, budget) is not None
    assert runner.pointwise_implicit_tiling(geometry(128, 96, 28, np.float64), 1, budget)
    assert runner.pointwise_implicit_tiling(geometry(256, 256, 28), 1, budget)
    for declined in (geometry(256, 64, 14), geometry(64, 256, 56), geometry(128, 512, 28),
                     geometry(256, 96, 56),
                     geometry(256, 64, 56, np.complex64), geometry(256, 64, 56, groups=2)):
        assert runner.pointwise_implicit_tiling(declined, 2, budget) is None, declined
    x, w, bias = random_layer(rng, (2, 128, 28, 29), (64, 128, 1, 1), np.float32)
    calls = _count_calls(retune, "correlate_pointwise_implicit")
    _check(x, w, bias)
    assert calls == [(2, 64, 812)]


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("budget", [2**14, 2**16, 2**18, 64 * 2**20])
@pytest.mark.parametrize("shape", [(8, 256, 56, 56, 64), (1, 2048, 7, 7, 512),
                                   (1, 130, 1, 1000, 70), (3, 64, 29, 31, 128)], ids=str)
def test_pointwise_tilings_stay_within_budget(shape, budget, threads, retune):
    retune(runner, "pointwise_implicit_pays", lambda geometry: True)
    n, c, h, w, k = shape
    for dtype in (np.float32, np.float64):
        geometry = Geometry(n, c, h, w, k, 1, 1, (0, 0, 0, 0), (1, 1), (1, 1), 1, "zeros",
                            np.dtype(dtype))
        tiling = runner.pointwise_implicit_tiling(geometry, threads, budget)
        if tiling is None:
            continue
        used = runner.implicit_fixed_bytes(geometry) + (
            np.prod(tiling.strips_shape(geometry)) + np.prod(tiling.tiles_shape(geometry))
        ) * np.dtype(dtype).itemsize
        assert used <= budget, tiling
        assert 1 <= tiling.slots <= threads
        assert tiling.k_block == gemm.panel_width(np.dtype(dtype).itemsize)
        # The strip's rows hold a whole tile rounded up to the micro-kernel's rows, an odd
        # number of lines.
        line = 64 // np.dtype(dtype).itemsize
        rows = gemm.tile_rows(np.dtype(dtype).itemsize)
        assert tiling.stride >= -(-tiling.tile // rows) * rows
        assert tiling.stride % line == 0 and tiling.stride // line % 2 == 1


@pytest.mark.parametrize("threads", [1, 2])
def test_pointwise_micro_kernel_under_small_budgets(threads, pointwise, rng):
    """A budget that holds only short tiles: more, shorter tiles, same result. Weights whose
    packed copy alone exceeds the budget: BLAS."""
    if threads > numba.config.NUMBA_NUM_THREADS:
        pytest.skip("needs 2 Numba threads")

    def geometry(c):
        return Geometry(2, c, 9, 31, 24, 1, 1, (0, 0, 0, 0), (1, 1), (1, 1), 1, "zeros",
                        np.dtype(np.float32))

    budget = 2**16
    small = runner.pointwise_implicit_tiling(geometry(100), threads, budget)
    assert small.tile < runner.pointwise_implicit_tiling(geometry(100), threads, 2**26).tile
    x, w, bias = random_layer(rng, (2, 100, 9, 31), (24, 100, 1, 1), np.float32)
    with fastconv.workspace_budget(budget):
        _check(x, w, bias, threads=threads)
    assert len(pointwise) == 1
    assert runner.pointwise_implicit_tiling(geometry(600), threads, budget) is None
    x, w, bias = random_layer(rng, (2, 600, 9, 31), (24, 600, 1, 1), np.float32)
    with fastconv.workspace_budget(budget):
        _check(x, w, bias, threads=threads)
    assert len(pointwise) == 1


def test_pointwise_micro_kernel_peak_memory_is_output_plus_budget(pointwise, rng):
    """Every buffer of the path (packed weights, offsets, strips, tiles) is counted."""
    x = rng.standard_normal((2, 256, 40, 40)).astype(np.float32)
    w = rng.standard_normal((128, 256, 1, 1)).astype(np.float32)
    fastconv.conv2d(x[:1, :, :8, :8], w, method="im2col")  # compile outside
    budget = 2**19
    with fastconv.workspace_budget(budget):
        tracemalloc.start()
        try:
            out = fastconv.conv2d(x, w, method="im2col")
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert len(pointwise) == 2
    assert peak - out.nbytes <= budget + 2**16, (peak - out.nbytes) / 2**20
    np.testing.assert_allclose(out, fastconv.conv2d(x, w, method="direct"), rtol=1e-4,
                               atol=1e-3)


def test_packed_weights_match_their_layout(rng):
    """pack_weights: panel m of group g holds [d][p] = w[g * Kg + m * P + p, d], zeros past Kg."""
    for dtype, groups, shape in ((np.float32, 1, (70, 5, 3, 2)), (np.float64, 3, (39, 4, 1, 1)),
                                 (np.float32, 2, (256, 130, 1, 1))):
        w = rng.standard_normal(shape).astype(dtype)
        panel = gemm.panel_width(np.dtype(dtype).itemsize)
        k_total, depth = shape[0], int(np.prod(shape[1:]))
        kg = k_total // groups
        panels = -(-kg // panel)
        packed = runner.pack_weights(w, groups).reshape(groups, panels, depth, panel)
        assert packed.ctypes.data % 64 == 0
        expected = np.zeros((groups, panels * panel, depth), dtype)
        expected[:, :kg] = w.reshape(groups, kg, depth)
        expected = expected.reshape(groups, panels, panel, depth).transpose(0, 1, 3, 2)
        np.testing.assert_array_equal(packed, expected)


def test_micro_kernel_buffers_start_on_cache_lines(monkeypatch, rng):
    """Packed weights, strips and output tiles of both micro-kernel paths start on a cache line
    (NumPy gives 16 bytes: vector loads and stores would split lines), every call."""
    offsets = []

    def spying(original):
        def spy(*args):
            offsets.append([args[i].ctypes.data % 64 for i in (1, -3, -2)])
            return original(*args)
        return spy

    for name in ("correlate_implicit", "correlate_pointwise_implicit"):
        monkeypatch.setattr(kernels, name, spying(getattr(kernels, name)))
    for _ in range(4):
        for weight_shape, size in (((64, 64, 3, 3), 8), ((64, 128, 1, 1), 28)):
            x, w, bias = random_layer(rng, (2, weight_shape[1], size, size), weight_shape,
                                      np.float32)
            fastconv.conv2d(x, w, bias, padding="same", method="im2col")
    assert offsets == [[0, 0, 0]] * 8


def test_pointwise_signatures_stay_closed(pointwise, rng):
    x = rng.standard_normal((2, 16, 9, 10))
    for dtype in (np.float32, np.float64):
        view = x.astype(dtype)[:, :, ::-1, ::2]
        fastconv.conv2d(view, np.ones((64, 16, 1, 1), dtype), method="im2col")
        fastconv.conv2d(view, np.ones((40, 8, 1, 1), dtype), np.ones(40, dtype), groups=2,
                        method="im2col")
    assert len(pointwise) == 4
    # (the fixture spies on the kernel: the dispatcher is its ``original``)
    for kernel in (kernels.correlate_pointwise_implicit.original, kernels.pack_panels):
        kinds = {str(signature[0]) for signature in kernel.signatures}
        assert len(kernel.signatures) == len(kinds) <= 4, kernel.signatures
