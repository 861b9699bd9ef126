"""The named workload grids: every problem the benchmarks time, as plain data.

Two kinds of problem:

* ``image``: one 2-D image correlated with one square kernel, ``correlate2d(x, w, mode)``
  semantics (``mode`` is 'valid' or 'same');
* ``layer``: an NCHW convolution layer, ``conv2d(x, w, bias, stride, padding, groups)``
  semantics (PyTorch's ``conv2d``).

Grids (``pytest bench/ --grid NAME``):

* ``smoke``: the smallest sizes of every shape family, for CI with ``--benchmark-disable``
  (< 60 s, compile time included); it has an even kernel to exercise the 'same' alignment checks.
* ``quick`` (default): 2048x2048 images, kernels 3-31, mode 'same', fp32 and fp64, plus every
  NCHW layer in fp32 and fp64 (< 10 min on 2 cores; see BENCHMARK_DEFAULTS).
* ``full``: 512x512, 2048x2048 and 4096x4096 images, kernels 3-63, modes 'valid' and 'same',
  fp32 and fp64, plus every NCHW layer in fp32 and fp64.
"""

from dataclasses import dataclass, replace

DTYPES = ("float32", "float64")


@dataclass(frozen=True)
class Workload:
    kind: str  # "image" or "layer"
    label: str  # the layer's name (a key of LAYERS), or "HxW" for an image
    batch: int
    channels: int
    out_channels: int
    height: int
    width: int
    kernel: int  # square kernels only
    dtype: str
    mode: str = ""  # images: "valid" or "same"
    stride: int = 1  # layers only, like padding and groups
    padding: int = 0
    groups: int = 1

    @property
    def name(self):
        """Readable, unique id of the problem (test ids, benchmark groups, report rows)."""
        if self.kind == "image":
            return f"{self.height}x{self.width}-k{self.kernel}-{self.mode}-{self.dtype}"
        return f"{self.label}-{self.batch}x{self.channels}x{self.height}x{self.width}-{self.dtype}"

    @property
    def family(self):
        """The rows of one report table and one plot: an image size, or all layers."""
        return f"{self.height}x{self.width}" if self.kind == "image" else "layers"

    @property
    def out_size(self):
        """Output (height, width)."""
        if self.kind == "image":
            if self.mode == "same":
                return self.height, self.width
            return self.height - self.kernel + 1, self.width - self.kernel + 1
        span = self.kernel - 1
        return ((self.height + 2 * self.padding - span - 1) // self.stride + 1,
                (self.width + 2 * self.padding - span - 1) // self.stride + 1)

    @property
    def macs(self):
        """Multiply-adds of the direct sum."""
        out_h, out_w = self.out_size
        per_output = self.channels // self.groups * self.kernel * self.kernel
        return self.batch * self.out_channels * out_h * out_w * per_output

    def shrunk(self, side):
        """The same problem on a smaller input whose output is at most ``side`` x ``side``."""
        if self.kind == "image":
            grow = 0 if self.mode == "same" else self.kernel - 1
            height, width = min(self.height, side + grow), min(self.width, side + grow)
        else:
            need = (side - 1) * self.stride + self.kernel - 2 * self.padding
            least = max(1, self.kernel - 2 * self.padding)
            height = min(self.height, max(least, need))
            width = min(self.width, max(least, need))
        return replace(self, height=height, width=width)


def images(sizes, kernels, modes, dtypes=DTYPES):
    """Image problems, ordered so that one size, mode and dtype sweep the kernels together."""
    return [
        Workload("image", f"{size}x{size}", 1, 1, 1, size, size, kernel, dtype, mode=mode)
        for size in sizes for dtype in dtypes for mode in modes for kernel in kernels
    ]


# name: (batch, in channels, out channels, height=width, kernel, stride, padding, groups)
LAYERS = {
    "resnet-stem-7x7s2": (8, 3, 64, 224, 7, 2, 3, 1),
    "resnet-3x3-64": (8, 64, 64, 56, 3, 1, 1, 1),
    "resnet-3x3-256": (8, 256, 256, 14, 3, 1, 1, 1),
    "resnet-1x1-256to64": (8, 256, 64, 56, 1, 1, 0, 1),
    "depthwise-3x3-128": (8, 128, 128, 56, 3, 1, 1, 128),
    "wide-15x15-16": (8, 16, 16, 128, 15, 1, 7, 1),
    "one-channel-3x3": (1, 1, 1, 1024, 3, 1, 1, 1),
}


def layers(dtypes=DTYPES, max_batch=None, max_side=None):
    """The NCHW layer problems; ``max_batch``/``max_side`` shrink them for the smoke grid."""
    out = []
    for dtype in dtypes:
        for label, (batch, c, k, side, kernel, stride, padding, groups) in LAYERS.items():
            batch = min(batch, max_batch or batch)
            side = min(side, max_side or side)
            out.append(Workload("layer", label, batch, c, k, side, side, kernel, dtype,
                                stride=stride, padding=padding, groups=groups))
    return out


GRIDS = {
    "smoke": images((48,), (3, 4, 15), ("valid", "same")) + layers(max_batch=2, max_side=16),
    "quick": images((2048,), (3, 5, 7, 11, 15, 31), ("same",)) + layers(),
    "full": images((512, 2048, 4096), (3, 5, 7, 11, 15, 31, 63), ("valid", "same")) + layers(),
}

# Longest estimated single call a grid times; slower cases are skipped, saying so
# (--max-call-seconds).
# quick: 2 s keeps scipy.signal.correlate2d at 2048x2048 with 11x11 (about 1 s) in the comparison.
MAX_CALL_SECONDS = {"smoke": float("inf"), "quick": 2.0, "full": 10.0}

# pytest-benchmark settings a grid uses unless given on the command line. The quick grid spends
# 0.5 s per case (pytest-benchmark's default is 1 s) and times calls slower than that 3 times
# instead of 5, which halves its run time; medians of ms-scale calls still come from >100 rounds.
BENCHMARK_DEFAULTS = {"quick": {"benchmark_max_time": 0.5, "benchmark_min_rounds": 3}}


# --- conv1d and conv3d (fastconv/_ranks.py): bench/test_ranks.py and bench/ranks.py -------------


@dataclass(frozen=True)
class RankWorkload:
    """A conv1d (rank 1) or conv3d (rank 3) layer with a cubic input and kernel."""

    label: str
    rank: int
    batch: int
    channels: int
    out_channels: int
    side: int  # L for rank 1, D = H = W for rank 3
    kernel: int
    padding: int
    dtype: str

    @property
    def name(self):
        shape = "x".join([str(self.side)] * self.rank)
        return (f"conv{self.rank}d-{self.batch}x{self.channels}to{self.out_channels}-{shape}"
                f"-k{self.kernel}-p{self.padding}-{self.dtype}")

    @property
    def input_shape(self):
        return (self.batch, self.channels) + (self.side,) * self.rank

    @property
    def weight_shape(self):
        return (self.out_channels, self.channels) + (self.kernel,) * self.rank

    @property
    def macs(self):
        out = self.side + 2 * self.padding - self.kernel + 1
        return (self.batch * self.out_channels * self.channels * (out * self.kernel) ** self.rank)


# label: (rank, batch, in channels, out channels, side, kernel, padding); the cases.
# The 1->1 volumes pad k // 2 so that scipy.ndimage.correlate (mode 'constant') computes the
# same output.
RANK_LAYERS = {
    "seq-64ch-k3": (1, 8, 64, 64, 16384, 3, 1),
    "seq-32ch-k9": (1, 8, 32, 32, 4096, 9, 0),
    "vol-32ch-k3": (3, 2, 32, 32, 32, 3, 0),
    "vol-4to8-k5": (3, 1, 4, 8, 64, 5, 0),
    "vol-1ch-k3": (3, 1, 1, 1, 128, 3, 1),
    "vol-1ch-k7": (3, 1, 1, 1, 128, 7, 3),
}


def rank_layers(dtypes=DTYPES, max_side=None):
    """The conv1d/conv3d problems; ``max_side`` shrinks them for the smoke grid."""
    out = []
    for dtype in dtypes:
        for label, (rank, batch, c, k, side, kernel, padding) in RANK_LAYERS.items():
            side = min(side, max_side or side)
            out.append(RankWorkload(label, rank, batch, c, k, side, kernel, padding, dtype))
    return out


RANK_GRIDS = {"smoke": rank_layers(max_side=16), "quick": rank_layers(), "full": rank_layers()}
