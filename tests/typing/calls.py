"""Calls of the public API for mypy (test_typing.py): the correct ones pass, and each line
marked "E: <code>" must be reported with that error code. Inside a function that nothing
calls: pytest's doctest collection imports this file."""
# ruff: noqa: F841 (annotated assignments are what mypy checks)

import numpy as np

import fastconv


def calls() -> None:
    x = np.ones((1, 2, 8, 8), np.float32)
    w = np.ones((3, 2, 3, 3), np.float32)

    y: np.ndarray = fastconv.conv2d(x, w, stride=(1, 2), padding="same", padding_mode="reflect")
    fastconv.conv2d(x, w, None, padding=((1, 0), (2, 1)), groups=1, method="im2col", threads=4)
    fastconv.conv2d([[1.0, 2.0], [3.0, 4.0]], [[1.0]], persist=False, method="measure")
    p = fastconv.plan(x.shape, w.shape, dtype=np.float32, padding=1, method="winograd")
    fastconv.conv2d(x, w, padding=1, method=p)
    fastconv.correlate2d(x[0, 0], w[0, 0], "same", "symm", fillvalue=np.float32(2))
    fastconv.convolve2d(x[0, 0], w[0, 0], mode="valid", boundary="wrap", fillvalue=1j)
    shape: tuple[int, ...] = fastconv.output_shape(x.shape, w.shape, stride=2, dilation=(1, 2))

    fastconv.conv2d(x, w, padding="half")  # E: arg-type
    fastconv.conv2d(x, w, padding_mode="mirror")  # E: arg-type
    fastconv.conv2d(x, w, method="magic")  # E: arg-type
    fastconv.conv2d(x, w, threads=2.0)  # E: arg-type
    fastconv.conv2d(x, w, 1, 1)  # E: call-arg
    fastconv.correlate2d(x, w, "some")  # E: arg-type
    fastconv.convolve2d(x, w, boundary="reflect")  # E: arg-type
    fastconv.plan(x.shape, w.shape, method="measure")  # E: arg-type
    fastconv.output_shape(x.shape, w.shape, padding=1.5)  # E: arg-type
    z: str = fastconv.correlate2d(x, w)  # E: assignment
