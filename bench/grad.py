"""Transposed convolutions and gradients against PyTorch, interleaved (issue 18's table).

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/grad.py [--threads 2]
        [--dtypes float32 float64] [--repeat 5] [--rounds 7] [--cases NAME ...] [--json PATH]

Each case times fastconv and torch on the same data, in alternation (one call of each per round,
``--rounds`` rounds after a warm-up), and repeats the whole series ``--repeat`` times; it prints
the median time of each and the ratio torch / fastconv of every series (median and range), so
the spread of a noisy machine shows. Cases:

* ``dcgan``, ``unet``: ``conv_transpose2d`` against ``torch.nn.functional.conv_transpose2d``;
* ``backward-<layer>``: ``fastconv.grad.conv2d_input`` + ``conv2d_weight`` against
  ``torch.autograd.grad`` of the same ``conv2d`` (the backward pass alone, graph kept);
* ``zero-insert-<case>``: the formulation not taken for strided input gradients, a ``conv2d``
  of the zero-upsampled ``grad_output`` with the flipped weight, against fastconv's
  stride-phase decomposition (both fastconv, the ratio is phases' speed-up);
* ``epoch``: one epoch of examples/train_digits.py against the same network in torch.
"""

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

import fastconv

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))

# name: (batch, in channels, out channels, input side, kernel, stride, padding); for the
# transposed cases "in" is conv_transpose2d's input.
TRANSPOSED = {
    "dcgan": (8, 256, 128, 16, 4, 2, 1),
    "unet": (4, 128, 64, 56, 2, 2, 0),
}
BACKWARD = {
    "resnet-stem-7x7s2": (8, 3, 64, 224, 7, 2, 3),
    "resnet-3x3-64": (8, 64, 64, 56, 3, 1, 1),
    "resnet-3x3-256": (8, 256, 256, 14, 3, 1, 1),
}


def _transposed_case(name, dtype, torch):
    n, c, k, side, kernel, stride, padding = TRANSPOSED[name]
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, c, side, side)).astype(dtype)
    w = rng.standard_normal((c, k, kernel, kernel)).astype(dtype)
    xt, wt = torch.from_numpy(x), torch.from_numpy(w)
    ours = lambda: fastconv.conv_transpose2d(x, w, stride=stride, padding=padding)  # noqa: E731
    theirs = lambda: torch.nn.functional.conv_transpose2d(  # noqa: E731
        xt, wt, stride=stride, padding=padding).numpy()
    return ours, theirs


def _backward_data(name, dtype):
    n, c, k, side, kernel, stride, padding = BACKWARD[name]
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, c, side, side)).astype(dtype)
    w = rng.standard_normal((k, c, kernel, kernel)).astype(dtype)
    out = fastconv.output_shape(x.shape, w.shape, stride=stride, padding=padding)
    gy = rng.standard_normal(out).astype(dtype)
    return x, w, gy, stride, padding


def _backward_case(name, dtype, torch):
    x, w, gy, stride, padding = _backward_data(name, dtype)
    options = dict(stride=stride, padding=padding)

    def ours():
        return (fastconv.grad.conv2d_input(x.shape, w, gy, **options),
                fastconv.grad.conv2d_weight(x, w.shape, gy, **options))

    xt = torch.from_numpy(x).requires_grad_()
    wt = torch.from_numpy(w).requires_grad_()
    y = torch.nn.functional.conv2d(xt, wt, **options)
    gyt = torch.from_numpy(gy)

    def theirs():
        return [g.numpy() for g in torch.autograd.grad(y, (xt, wt), gyt, retain_graph=True)]

    return ours, theirs


def _zero_insert_case(name, dtype, torch):
    """Stride-phase decomposition (ours) against the zero-insertion formulation (theirs)."""
    x, w, gy, stride, padding = _backward_data(name, dtype)
    kernel = w.shape[-1]
    up = np.zeros(gy.shape[:2] + ((gy.shape[2] - 1) * stride + 1,) * 2, dtype)
    flipped = np.ascontiguousarray(w[:, :, ::-1, ::-1].swapaxes(0, 1))
    # gxp[lo:lo + n] of the full correlation: pad kernel-1 on the left, then crop to the input.
    before = kernel - 1 - padding
    after = x.shape[-1] - (up.shape[-1] + before - kernel + 1)

    def theirs():
        up[:, :, ::stride, ::stride] = gy
        return fastconv.conv2d(up, flipped, padding=((before, after), (before, after)))

    ours = lambda: fastconv.grad.conv2d_input(x.shape, w, gy, stride=stride,  # noqa: E731
                                              padding=padding)
    return ours, theirs


def _epoch_case(dtype, torch):
    import train_digits

    images, labels = train_digits.load(None)
    ours = lambda: train_digits.run_epoch(  # noqa: E731
        train_digits.Network(np.random.default_rng(0), dtype), images.astype(dtype), labels,
        np.random.default_rng(1), progress=False)
    theirs = train_digits.torch_epoch(images.astype(dtype), labels, dtype)
    return ours, theirs


def cases(dtypes, torch):
    """(name, dtype, builder) of every case; a builder returns the (fastconv, peer) calls."""
    for dtype in dtypes:
        for name in TRANSPOSED:
            yield name, dtype, lambda name=name, dtype=dtype: _transposed_case(name, dtype, torch)
        for name in BACKWARD:
            yield (f"backward-{name}", dtype,
                   lambda name=name, dtype=dtype: _backward_case(name, dtype, torch))
        for name in ("resnet-stem-7x7s2",):
            yield (f"zero-insert-{name}", dtype,
                   lambda name=name, dtype=dtype: _zero_insert_case(name, dtype, torch))
        yield "epoch", dtype, lambda dtype=dtype: _epoch_case(dtype, torch)


def series(ours, theirs, rounds):
    """Median seconds of each over ``rounds`` alternating calls."""
    times = ([], [])
    for _ in range(rounds):
        for i, call in enumerate((ours, theirs)):
            start = time.perf_counter()
            call()
            times[i].append(time.perf_counter() - start)
    return statistics.median(times[0]), statistics.median(times[1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--dtypes", nargs="+", default=["float32", "float64"])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--cases", nargs="+", default=None)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    import numba
    import torch
    from threadpoolctl import threadpool_limits

    numba.set_num_threads(args.threads)
    torch.set_num_threads(args.threads)
    results = []
    with threadpool_limits(args.threads):
        print(f"threads {args.threads}, torch {torch.__version__}, {args.repeat} series of "
              f"{args.rounds} alternating rounds; ratio = peer / fastconv (> 1: fastconv faster)")
        print(f"{'case':<30}{'dtype':<9}{'fastconv':>11}{'peer':>11}{'ratio':>8}  range")
        for name, dtype, make in cases(args.dtypes, torch):
            if args.cases and not any(name.startswith(c) for c in args.cases):
                continue
            ours, theirs = make()
            ours(), theirs()  # warm-up: compilation, caches, plans
            runs = [series(ours, theirs, args.rounds) for _ in range(args.repeat)]
            ratios = sorted(t / o for o, t in runs)
            ours_s = statistics.median(o for o, _ in runs)
            theirs_s = statistics.median(t for _, t in runs)
            results.append(dict(case=name, dtype=dtype, threads=args.threads, fastconv=ours_s,
                                peer=theirs_s, ratios=ratios))
            print(f"{name:<30}{dtype:<9}{ours_s * 1e3:>9.2f}ms{theirs_s * 1e3:>9.2f}ms"
                  f"{statistics.median(ratios):>7.2f}x  {ratios[0]:.2f}-{ratios[-1]:.2f}",
                  flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
