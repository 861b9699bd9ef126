"""fastconv on dask arrays: lazy results equal the in-memory ones, chunk by chunk."""

import itertools
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from oracle import assert_close

import fastconv

da = pytest.importorskip("dask.array")
dask = pytest.importorskip("dask")

MODES = ("zeros", "reflect", "replicate", "circular", "symmetric")
BOUNDARIES = ("fill", "wrap", "symm")


def computed(lazy):
    """Every block computed (synchronously) and checked against the chunks the graph declares,
    then assembled."""
    parts = lazy.to_delayed()
    values = dask.compute(*parts.ravel(), scheduler="sync")
    for value, shape in zip(values, itertools.product(*lazy.chunks), strict=True):
        assert value.shape == shape, f"block of shape {value.shape}, declared {shape}"
        assert value.dtype == lazy.dtype
    blocks = np.empty(parts.shape, object)
    for index, value in zip(np.ndindex(parts.shape), values, strict=True):
        blocks[index] = value
    return np.block(blocks.tolist())


def scale_of(function, x, w, *args, **options):
    """The local scale sum |x| * |w| of every output (the tolerance table's reference)."""
    return np.abs(function(np.abs(x), np.abs(w), *args, method="direct", **options))


@st.composite
def partitions(draw, size):
    """Chunk sizes of an axis of ``size``: uniform or irregular, often smaller than the kernel."""
    if draw(st.booleans()):
        step = draw(st.integers(1, size))
        return (step,) * (size // step) + ((size % step,) if size % step else ())
    cuts = draw(st.sets(st.integers(1, size - 1), max_size=4)) if size > 1 else set()
    edges = [0, *sorted(cuts), size]
    return tuple(b - a for a, b in itertools.pairwise(edges))


@st.composite
def layer_calls(draw):
    ndim = draw(st.sampled_from((2, 3, 4)))
    groups = draw(st.sampled_from((1, 2))) if ndim > 2 else 1
    channels = groups * draw(st.integers(1, 2)) if ndim > 2 else 1
    out_channels = groups * draw(st.integers(1, 2)) if ndim > 2 else 1
    batch = draw(st.integers(1, 2))
    height, width = draw(st.integers(1, 11)), draw(st.integers(1, 11))
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = draw(st.one_of(
        st.sampled_from(("valid", "full")),
        st.tuples(st.tuples(st.integers(0, 5), st.integers(0, 5)),
                  st.tuples(st.integers(0, 5), st.integers(0, 5))),
        st.just("same") if stride == (1, 1) else st.just("valid"),
    ))
    mode = draw(st.sampled_from(MODES))
    shape = {2: (height, width), 3: (channels, height, width),
             4: (batch, channels, height, width)}[ndim]
    w_shape = (kh, kw) if ndim == 2 else (out_channels, channels // groups, kh, kw)
    pad = fastconv._validate.parse_padding(padding, (kh, kw), stride, dilation)
    assume(height + pad[0] + pad[1] > dilation[0] * (kh - 1))
    assume(width + pad[2] + pad[3] > dilation[1] * (kw - 1))
    chunks = tuple(draw(partitions(n)) for n in shape)
    options = dict(stride=stride, padding=padding, dilation=dilation, groups=groups,
                   padding_mode=mode)
    return shape, w_shape, chunks, draw(st.booleans()), options


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(call=layer_calls(), seed=st.integers(0, 2**16))
def test_conv2d_matches_in_memory(call, seed):
    shape, w_shape, chunks, with_bias, options = call
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape)
    w = rng.standard_normal(w_shape)
    bias = (rng.standard_normal(() if len(shape) == 2 else w_shape[0]) if with_bias else None)
    lazy = fastconv.conv2d(da.from_array(x, chunks=chunks), w, bias, method="direct", **options)
    expected = fastconv.conv2d(x, w, bias, method="direct", **options)
    assert lazy.shape == expected.shape and lazy.dtype == expected.dtype
    scale = scale_of(fastconv.conv2d, x, w, None if bias is None else np.abs(bias), **options)
    assert_close(computed(lazy), expected, scale, expected.dtype)


@st.composite
def scipy_calls(draw):
    height, width = draw(st.integers(1, 12)), draw(st.integers(1, 12))
    kh, kw = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    mode = draw(st.sampled_from(("full", "same", "valid")))
    if mode == "valid":  # in2 larger than a dask in1 is refused (tested below)
        assume(kh <= height and kw <= width)
    chunks = (draw(partitions(height)), draw(partitions(width)))
    return (height, width), (kh, kw), chunks, mode, draw(st.sampled_from(BOUNDARIES))


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(call=scipy_calls(), convolve=st.booleans(), integers=st.booleans(),
       seed=st.integers(0, 2**16))
def test_scipy_dropins_match_in_memory(call, convolve, integers, seed):
    shape, k_shape, chunks, mode, boundary = call
    rng = np.random.default_rng(seed)
    if integers:
        x, w, fill = rng.integers(-9, 9, shape), rng.integers(-9, 9, k_shape), 3
    else:
        x, w, fill = rng.standard_normal(shape), rng.standard_normal(k_shape), 0.5
    function = fastconv.convolve2d if convolve else fastconv.correlate2d
    lazy = function(da.from_array(x, chunks=chunks), w, mode, boundary, fill, method="direct")
    expected = function(x, w, mode, boundary, fill, method="direct")
    assert lazy.shape == expected.shape and lazy.dtype == expected.dtype
    scale = scale_of(function, x, w, mode, boundary, abs(fill))
    assert_close(computed(lazy), expected, scale, expected.dtype)


@pytest.mark.parametrize("padding_mode", MODES)
@pytest.mark.parametrize(("rank", "x_shape", "w_shape", "chunks", "options"), [
    (1, (3, 4, 50), (6, 2, 5), (2, 3, 7), dict(groups=2, stride=3, padding=4)),
    (1, (2, 40), (3, 2, 7), (1, 9), dict(padding="same", dilation=2)),
    (3, (2, 3, 11, 12, 13), (4, 3, 3, 2, 3), (1, 2, 4, 5, 6), dict(padding=1)),
    (3, (10, 9, 8), (3, 3, 3), 4, dict(stride=2, padding=((2, 1), (0, 3), (1, 1)),
                                        dilation=(1, 2, 1))),
], ids=["1d-groups-stride", "1d-same-dilated", "3d-channels-split", "3d-spatial-strided"])
def test_conv1d_and_conv3d_match_in_memory(rank, x_shape, w_shape, chunks, options, padding_mode,
                                           rng):
    """Every rank: the N-D engine per task, halos planned per axis, channels summed."""
    function = getattr(fastconv, f"conv{rank}d")
    x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    lazy = function(da.from_array(x, chunks=chunks), w, padding_mode=padding_mode, **options)
    expected = function(x, w, padding_mode=padding_mode, **options)
    assert lazy.shape == expected.shape
    scale = scale_of(function, x, w, padding_mode=padding_mode, **options)
    assert_close(computed(lazy), expected, scale, np.float64, "auto")


def test_complex_and_float32_keep_their_dtype(rng):
    x = (rng.standard_normal((9, 10)) + 1j * rng.standard_normal((9, 10))).astype(np.complex64)
    w = np.array([[1 + 2j, 0.5], [-1j, 2]], np.complex64)
    lazy = fastconv.correlate2d(da.from_array(x, chunks=4), w, "same", "symm", method="direct")
    expected = fastconv.correlate2d(x, w, "same", "symm", method="direct")
    scale = scale_of(fastconv.correlate2d, x, w, "same", "symm")
    assert_close(computed(lazy), expected, scale, np.complex64)


def test_channels_split_across_chunks_with_groups(rng):
    x = rng.standard_normal((2, 6, 9, 8)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    bias = rng.standard_normal(4).astype(np.float32)
    lazy = fastconv.conv2d(da.from_array(x, chunks=(1, (1, 4, 1), 4, 5)), w, bias, groups=2,
                           padding=1, padding_mode="reflect", method="direct")
    assert lazy.chunks[:2] == ((1, 1), (2, 2))  # output channels follow the groups
    expected = fastconv.conv2d(x, w, bias, groups=2, padding=1, padding_mode="reflect",
                               method="direct")
    scale = scale_of(fastconv.conv2d, x, w, np.abs(bias), groups=2, padding=1,
                     padding_mode="reflect")
    assert_close(computed(lazy), expected, scale, np.float32)


def test_same_keeps_the_chunks_and_auto_plans_each_chunk(rng):
    x = rng.standard_normal((40, 33)).astype(np.float32)
    w = rng.standard_normal((7, 7)).astype(np.float32)
    lazy = fastconv.conv2d(da.from_array(x, chunks=(16, 11)), w, padding="same",
                           padding_mode="reflect")
    assert lazy.chunks == ((16, 16, 8), (11, 11, 11))
    expected = fastconv.conv2d(x, w, padding="same", padding_mode="reflect")
    scale = scale_of(fastconv.conv2d, x, w, padding="same", padding_mode="reflect")
    assert_close(computed(lazy), expected, scale, np.float32, method="fft")


class Counting:
    """An array-like that counts reads: dask reads it only when computing."""

    def __init__(self, array):
        self.array, self.reads = array, 0
        self.shape, self.dtype, self.ndim = array.shape, array.dtype, array.ndim

    def __getitem__(self, key):
        self.reads += 1
        return self.array[key]


def _no_compute(*args, **kwargs):
    raise AssertionError("something was computed")


def test_nothing_is_computed_before_compute(rng):
    source = Counting(rng.standard_normal((2, 3, 12, 12)))
    x = da.from_array(source, chunks=(1, 2, 5, 5), asarray=True)
    source.reads = 0  # from_array reads an empty slice for the array's meta
    with dask.config.set(scheduler=_no_compute):
        lazy = fastconv.conv2d(x, rng.standard_normal((4, 3, 3, 3)), padding=2,
                               padding_mode="circular", method="direct")
        also = fastconv.correlate2d(x[0, 0], np.ones((4, 4)), "full", "symm", method="direct")
    assert source.reads == 0
    assert lazy.shape == (2, 4, 14, 14) and also.shape == (15, 15)
    lazy.compute(scheduler="sync")
    assert source.reads > 0


@pytest.mark.parametrize("threads", [None, 2])
def test_threads_scheduler_runs_tasks_side_by_side(rng, threads):
    x = rng.standard_normal((64, 64))
    lazy = fastconv.conv2d(da.from_array(x, chunks=16), np.ones((5, 5)), padding="same",
                           padding_mode="symmetric", method="direct", threads=threads)
    expected = fastconv.conv2d(x, np.ones((5, 5)), padding="same", padding_mode="symmetric",
                               method="direct")
    got = lazy.compute(scheduler="threads", num_workers=4)
    assert_close(got, expected, scale_of(fastconv.conv2d, x, np.ones((5, 5)), padding="same",
                                         padding_mode="symmetric"), np.float64)


@pytest.mark.parametrize(("threads", "expected"), [(None, {1}), (2, {2})])
def test_each_task_runs_one_numba_thread_unless_told(monkeypatch, threads, expected):
    seen = set()
    run = fastconv.dask.correlate_nd

    def spy(*args):
        seen.add(args[9])  # the engine's thread limit
        return run(*args)

    monkeypatch.setattr(fastconv.dask, "correlate_nd", spy)
    x = da.ones((20, 20), chunks=10)
    fastconv.conv2d(x, np.ones((3, 3)), method="direct", threads=threads).compute(
        scheduler="sync")
    assert seen == expected


def _run(code, **environment):
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(fastconv.__file__)),
               **environment)
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env,
                          capture_output=True, text=True, timeout=300)


def test_import_does_not_import_dask():
    done = _run("""
        import sys, fastconv
        assert "dask" not in sys.modules, "dask imported"
        import numpy as np
        fastconv.conv2d(np.ones((4, 4)), np.ones((2, 2)), method="direct")
        assert "dask" not in sys.modules, "dask imported by a NumPy call"
        print(fastconv.dask.__name__)
        """)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "fastconv.dask"


def test_workqueue_layer_survives_concurrent_tasks():
    # workqueue aborts the process when two threads launch parallel kernels at once.
    done = _run("""
        import numba, numpy as np, dask.array as da, fastconv
        x = np.random.default_rng(0).standard_normal((96, 96))
        lazy = fastconv.conv2d(da.from_array(x, chunks=12), np.ones((3, 3)), padding=1,
                               method="direct")
        got = lazy.compute(scheduler="threads", num_workers=4)
        assert np.allclose(got, fastconv.conv2d(x, np.ones((3, 3)), padding=1))
        print(numba.threading_layer())
        """, NUMBA_THREADING_LAYER="workqueue")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "workqueue"


def test_processes_scheduler(rng):
    x = rng.standard_normal((1, 2, 20, 20))
    w = rng.standard_normal((3, 2, 3, 3))
    lazy = fastconv.conv2d(da.from_array(x, chunks=(1, 1, 8, 8)), w, padding=1,
                           padding_mode="replicate", method="direct")
    got = lazy.compute(scheduler="processes", num_workers=2)
    expected = fastconv.conv2d(x, w, padding=1, padding_mode="replicate", method="direct")
    assert_close(got, expected, scale_of(fastconv.conv2d, x, w, padding=1,
                                         padding_mode="replicate"), np.float64)


@pytest.fixture(scope="module")
def client():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=2, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        yield client


@pytest.mark.parametrize("case", ["conv2d-channels-split", "correlate2d-wrap",
                                  "convolve2d-int-valid"])
def test_distributed_cluster(client, rng, case):
    if case == "conv2d-channels-split":
        x = rng.standard_normal((2, 4, 30, 20)).astype(np.float32)
        w = rng.standard_normal((2, 4, 5, 3)).astype(np.float32)
        options = dict(stride=(2, 1), padding=((3, 1), (2, 2)), padding_mode="reflect")
        lazy = fastconv.conv2d(da.from_array(x, chunks=(1, 2, 9, 7)), w, **options)
        expected = fastconv.conv2d(x, w, **options)
        scale = scale_of(fastconv.conv2d, x, w, **options)
    else:
        convolve = case.startswith("convolve")
        function = fastconv.convolve2d if convolve else fastconv.correlate2d
        x = rng.integers(-5, 5, (25, 31)) if convolve else rng.standard_normal((25, 31))
        args = ("valid",) if convolve else ("same", "wrap")
        k = np.arange(12).reshape(3, 4)
        lazy = function(da.from_array(x, chunks=(7, 10)), k, *args)
        expected = function(x, k, *args)
        scale = scale_of(function, x, k, *args)
    got = client.compute(lazy).result()
    assert_close(got, expected, scale, expected.dtype, method="fft")


# Bad input: one case per message.
def _dask(shape, chunks=3):
    return da.zeros(shape, chunks=chunks)


def test_dask_weight_bias_and_in2_are_refused():
    x = _dask((8, 8))
    with pytest.raises(TypeError, match=r"`weight` must be array_like in memory \(only `input` "
                       r"may be a dask array\); got a dask array of shape \(3, 3\).*"
                       r"Pass `weight.compute\(\)`"):
        fastconv.conv2d(np.ones((8, 8)), _dask((3, 3)))
    with pytest.raises(TypeError, match=r"`bias` must be array_like in memory"):
        fastconv.conv2d(x[None], np.ones((1, 1, 3, 3)), _dask((1,)))
    with pytest.raises(TypeError, match=r"`in2` must be array_like in memory \(only `in1`"):
        fastconv.correlate2d(x, _dask((2, 2)))
    with pytest.raises(TypeError, match=r"`fillvalue` must be array_like in memory"):
        fastconv.convolve2d(x, np.ones((2, 2)), fillvalue=_dask(()))


def test_unknown_chunk_sizes_are_refused():
    x = _dask((8, 8))
    unknown = x[x[:, 0] > 0]  # boolean indexing: row count unknown until computed
    with pytest.raises(ValueError, match=r"`input` must be a dask array with known chunk sizes; "
                       r"got a dask array of shape \(nan, 8\).*compute_chunk_sizes"):
        fastconv.conv2d(unknown, np.ones((3, 3)))


def test_bad_lazy_options_are_refused():
    x = _dask((8, 8))
    plan = fastconv.plan((8, 8), (3, 3))
    with pytest.raises(ValueError, match=r"`method` must be 'auto', 'measure' or one of .* for "
                       r"a dask array .*; got Plan"):
        fastconv.conv2d(x, np.ones((3, 3)), method=plan)
    with pytest.raises(ValueError, match=r"`in2` must be no larger than `in1` in every dimension "
                       r"for mode='valid' when `in1` is a dask array; got shape \(9, 9\)"):
        fastconv.correlate2d(x, np.ones((9, 9)), "valid")
    with pytest.raises(TypeError, match=r"`in1` must be of a type no wider than float64"):
        fastconv.correlate2d(x.astype(np.longdouble), np.ones((2, 2)))
    with pytest.raises(TypeError, match=r"`input` must be a numeric array"):
        fastconv.conv2d(x.astype("datetime64[s]"), np.ones((2, 2)))
    with pytest.raises(ValueError, match=r"`threads` must be >= 1; got 0\."):
        fastconv.conv2d(x, np.ones((3, 3)), threads=0)
    # The ordinary checks run on the shapes, before any graph is built.
    with pytest.raises(ValueError, match=r"`weight` must be no larger"):
        fastconv.conv2d(x, np.ones((9, 9)))
