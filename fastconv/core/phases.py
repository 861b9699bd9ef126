"""The kernel that writes one stride phase of a transposed convolution or an input gradient
into its positions of the result (``_transpose._adjoint``)."""

from numba import prange

from .jit import parallel_kernel


@parallel_kernel
def scatter_phase(result, first, step, out):
    """out[p, first[0] + i * step[0], first[1] + j * step[1], first[2] + l * step[2]] =
    result[p, i, j, l], in parallel over the planes p.

    Preconditions: ``result`` and ``out`` 4-D, C-contiguous, of one dtype, the positions inside
    ``out``; ``first`` and ``step`` int64 (3,). NumPy's strided assignment of the same phases
    (four of 4x64x56x56 into 4x64x112x112, one thread) re-read and re-wrote every cache line of
    the result once per phase: 4.3 ms fp32, 12.3 ms fp64.
    """
    planes, depth, height, width = result.shape
    for p in prange(planes):
        for i in range(depth):
            for j in range(height):
                source = result[p, i, j]
                target = out[p, first[0] + i * step[0], first[1] + j * step[1]]
                for k in range(width):
                    target[first[2] + k * step[2]] = source[k]
