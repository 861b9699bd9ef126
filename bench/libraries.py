"""Every library a benchmark case can time, behind one interface, plus thread control and the
agreement check.

A :class:`Library` turns a workload and its data into a :class:`Call`: a zero-argument function
that runs the library (anything it needs, such as tensors or a flipped kernel, is prepared outside
the timed call) and a function that returns the result as an ndarray together with where it sits
in the full correlation. That is what lets every case be checked against fastconv on exactly the
region it computes before it is timed (peer semantics: ../shared/notes/peer-semantics.md).
"""

import importlib
import zlib
from collections.abc import Callable
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from functools import cache, partial

import numpy as np

import fastconv


@dataclass(frozen=True)
class Data:
    x: np.ndarray  # (H, W) image or (N, C, H, W) input
    w: np.ndarray  # (k, k) kernel or (K, C/groups, k, k) weights
    bias: np.ndarray | None  # (K,) for layers


def make_data(workload):
    """Standard-normal data, the same for a workload in every process (seeded by its name)."""
    rng = np.random.default_rng(zlib.crc32(workload.name.encode()))
    k = workload.kernel
    if workload.kind == "image":
        shapes = [(workload.height, workload.width), (k, k)]
    else:
        shapes = [(workload.batch, workload.channels, workload.height, workload.width),
                  (workload.out_channels, workload.channels // workload.groups, k, k),
                  (workload.out_channels,)]
    arrays = [rng.standard_normal(shape).astype(workload.dtype) for shape in shapes]
    return Data(*arrays) if len(arrays) == 3 else Data(*arrays, None)


@dataclass(frozen=True)
class Call:
    run: Callable[[], object]
    output: Callable[[object], tuple[np.ndarray, tuple[int, int]]]
    """The run's result as an ndarray and the (row, column) of its first element in the full
    correlation; (0, 0) for layers, where every library computes the same padded output."""


@dataclass(frozen=True)
class Library:
    name: str
    kinds: tuple[str, ...]  # workload kinds it can compute
    module: str  # must import, or the case is skipped as not installed
    threaded: bool  # False: runs on one thread whatever the thread setting
    prepare: Callable  # (workload, data, threads) -> Call
    method: str | None = None  # fastconv's method name ('auto' or a registry name)
    same_size_only: bool = False  # computes an input-sized output whatever the mode
    note: str = ""

    def outputs(self, workload):
        """How many outputs the library computes for the workload (its cost scales with it)."""
        if self.same_size_only:
            return workload.height * workload.width
        out_height, out_width = workload.out_size
        return workload.batch * workload.out_channels * out_height * out_width


def _image_window(workload, same_start):
    """Offset of a 'valid' or 'same' result in the full correlation; ``same_start`` is where the
    library's 'same' output starts (k // 2 for correlate2d and torch, (k - 1) // 2 for the centred
    conventions of fftconvolve, ndimage and OpenCV: they differ for even kernels)."""
    k = workload.kernel
    return (k - 1, k - 1) if workload.mode == "valid" else (same_start, same_start)


def _at(offset):
    return lambda out: (np.asarray(out), offset)


def _fastconv(method):
    def prepare(workload, data, threads):
        if workload.kind == "image":
            run = partial(fastconv.correlate2d, data.x, data.w, workload.mode, method=method,
                          threads=threads)
            return Call(run, _at(_image_window(workload, workload.kernel // 2)))
        run = partial(fastconv.conv2d, data.x, data.w, data.bias, stride=workload.stride,
                      padding=workload.padding, groups=workload.groups, method=method,
                      threads=threads)
        return Call(run, _at((0, 0)))

    return prepare


def _correlate2d(workload, data, threads):
    from scipy import signal

    run = partial(signal.correlate2d, data.x, data.w, workload.mode)
    return Call(run, _at(_image_window(workload, workload.kernel // 2)))


def _fft_peer(function_name):
    def prepare(workload, data, threads):
        from scipy import signal

        # A convolution: the flipped kernel gives the correlation (real data, no conjugate).
        flipped = np.ascontiguousarray(data.w[::-1, ::-1])
        run = partial(getattr(signal, function_name), data.x, flipped, workload.mode)
        return Call(run, _at(_image_window(workload, (workload.kernel - 1) // 2)))

    return prepare


def _ndimage(workload, data, threads):
    from scipy import ndimage

    run = partial(ndimage.correlate, data.x, data.w, mode="constant", cval=0.0)
    centred = (workload.kernel - 1) // 2
    return Call(run, _at((centred, centred)))


def _filter2d(workload, data, threads):
    import cv2

    run = partial(cv2.filter2D, data.x, -1, data.w, borderType=cv2.BORDER_CONSTANT)
    centred = (workload.kernel - 1) // 2
    return Call(run, _at((centred, centred)))


def _torch(workload, data, threads):
    import torch

    conv2d = torch.nn.functional.conv2d
    if workload.kind == "image":
        x = torch.from_numpy(data.x)[None, None]
        w = torch.from_numpy(data.w)[None, None]
        run = partial(conv2d, x, w, padding="valid" if workload.mode == "valid" else "same")
        offset = _image_window(workload, workload.kernel // 2)
        return Call(run, lambda out: (out[0, 0].numpy(), offset))
    x, w, bias = (torch.from_numpy(a) for a in (data.x, data.w, data.bias))
    run = partial(conv2d, x, w, bias, stride=workload.stride, padding=workload.padding,
                  groups=workload.groups)
    return Call(run, lambda out: (out.numpy(), (0, 0)))


_SAME_SIZE_ONLY = ("has no 'valid' mode: computes the same-size output (zero border), which "
                   "contains the 'valid' region")

PEERS = (
    Library("scipy.signal.correlate2d", ("image",), "scipy.signal", False, _correlate2d),
    Library("scipy.signal.fftconvolve", ("image",), "scipy.signal", True, _fft_peer("fftconvolve"),
            note="a convolution: times it with the flipped kernel"),
    Library("scipy.signal.oaconvolve", ("image",), "scipy.signal", True, _fft_peer("oaconvolve"),
            note="a convolution: times it with the flipped kernel"),
    Library("scipy.ndimage.correlate", ("image",), "scipy.ndimage", False, _ndimage,
            same_size_only=True, note=_SAME_SIZE_ONLY),
    Library("cv2.filter2D", ("image",), "cv2", True, _filter2d, same_size_only=True,
            note=_SAME_SIZE_ONLY),
    Library("torch.conv2d", ("image", "layer"), "torch", True, _torch),
)


def fastconv_libraries():
    """fastconv's 'auto' and every method in the registry (new methods join automatically)."""
    return tuple(
        Library(f"fastconv.{method}", ("image", "layer"), "fastconv", True, _fastconv(method),
                method=method)
        for method in ("auto", *fastconv.METHODS)
    )


def all_libraries():
    return fastconv_libraries() + PEERS


@cache
def optional(module):
    """The imported module, or None when it is not installed."""
    try:
        return importlib.import_module(module)
    except ImportError:
        return None


def fastconv_geometry(workload, data):
    """fastconv's Geometry of the problem (what its methods' ``declines`` and the planner read)."""
    from fastconv._validate import conv2d_problem, scipy_problem

    if workload.kind == "image":
        problem, _, _ = scipy_problem(data.x, data.w, mode=workload.mode, boundary="fill",
                                      fillvalue=0, convolve=False)
        return problem.geometry
    problem, _ = conv2d_problem(data.x, data.w, data.bias, stride=workload.stride,
                                padding=workload.padding, dilation=1, groups=workload.groups,
                                padding_mode="zeros")
    return problem.geometry


def declines(library, geometry):
    """Why a fastconv method refuses the problem, or None (peers and 'auto' never refuse)."""
    import fastconv
    from fastconv.strategies import REGISTRY

    if library.method in (None, "auto"):
        return None
    return REGISTRY[library.method].declines(geometry, fastconv.get_workspace_budget())


def auto_choice(geometry, threads):
    from fastconv.planning.plan import make_plan

    return make_plan(geometry, "auto", threads).method


@contextmanager
def thread_count(count):
    """Run the body with ``count`` threads in every library: Numba, the BLAS and OpenMP pools
    (threadpoolctl), SciPy's FFT workers, PyTorch and OpenCV. Previous settings come back after."""
    import numba
    import scipy.fft
    from threadpoolctl import threadpool_limits

    with ExitStack() as stack:
        stack.enter_context(threadpool_limits(limits=count))
        stack.enter_context(scipy.fft.set_workers(count))
        stack.callback(numba.set_num_threads, numba.get_num_threads())
        numba.set_num_threads(count)
        torch = optional("torch")
        if torch is not None:
            stack.callback(torch.set_num_threads, torch.get_num_threads())
            torch.set_num_threads(count)
        cv2 = optional("cv2")
        if cv2 is not None:
            stack.callback(cv2.setNumThreads, cv2.getNumThreads())
            cv2.setNumThreads(count)
        yield


def reference(workload, data, threads):
    """fastconv's direct method: the full correlation for images (every library's result is a
    window of it), the layer's output for layers."""
    if workload.kind == "image":
        return fastconv.correlate2d(data.x, data.w, "full", method="direct", threads=threads)
    return fastconv.conv2d(data.x, data.w, data.bias, stride=workload.stride,
                           padding=workload.padding, groups=workload.groups, method="direct",
                           threads=threads)


# Allowed difference per output, relative to max|x| * max_k sum|w_k| + max|bias|. That scale bounds
# the local scale sum |x| * |w| of every output, which the error of direct and GEMM sums is relative
# to, and the operand norms that FFT errors (fftconvolve, oaconvolve, OpenCV's DFT path) are
# relative to. The values are the test suite's LOCAL_TOLERANCE (worst measured direct errors are
# 25x and 160x smaller); a misaligned window differs by about sqrt(sum w^2) * rms(x), far above.
TOLERANCE = {"float32": 1e-5, "float64": 1e-13}


def error_bound(workload, data):
    w = np.abs(data.w.astype(np.float64))
    per_output = w.reshape(len(w), -1).sum(axis=1).max() if workload.kind == "layer" else w.sum()
    bias = 0.0 if data.bias is None else float(np.max(np.abs(data.bias)))
    return TOLERANCE[workload.dtype] * (float(np.max(np.abs(data.x))) * per_output + bias)


def difference(name, result, offset, expected):
    """Largest |result - expected| over the window of ``expected`` that ``result`` covers."""
    row, col = offset
    height, width = result.shape[-2:]
    if row < 0 or col < 0 or row + height > expected.shape[-2] or col + width > expected.shape[-1]:
        raise AssertionError(f"{name}: a result of shape {result.shape} at offset {offset} is "
                             f"not a window of fastconv's result of shape {expected.shape}.")
    window = expected[..., row:row + height, col:col + width]
    if result.shape != window.shape:
        raise AssertionError(f"{name}: result shape {result.shape} != fastconv's {window.shape}.")
    return float(np.max(np.abs(result.astype(np.float64) - window)))
