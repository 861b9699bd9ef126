"""SciPy's BLAS GEMM callable from cached Numba kernels.

``np.dot`` inside Numba cannot accumulate (beta = 0) or take strided operands (it copies them),
and a ctypes function pointer makes a kernel uncacheable ("uses dynamic globals"). So the
addresses of ``scipy.linalg.cython_blas.{s,d,c,z}gemm`` are registered as LLVM symbols and
declared as external functions: the compiled code refers to them by name, which survives the
on-disk cache (the symbols are registered again at import, before any kernel loads).

Every argument is a pointer (Fortran calling convention, column-major, 32-bit ints: SciPy's
OpenBLAS is LP64).
"""

from llvmlite import binding
from numba import types
from numba.extending import get_cython_function_address, overload

_SIGNATURE = types.void(*([types.voidptr] * 13))


def _declare(name):
    symbol = f"fastconv_{name}"
    binding.add_symbol(symbol, get_cython_function_address("scipy.linalg.cython_blas", name))
    return types.ExternalFunction(symbol, _SIGNATURE)


sgemm = _declare("sgemm")
dgemm = _declare("dgemm")
cgemm = _declare("cgemm")
zgemm = _declare("zgemm")


_GEMM_BY_DTYPE = {
    types.float32: sgemm,
    types.float64: dgemm,
    types.complex64: cgemm,
    types.complex128: zgemm,
}


def gemm(m, n, k, a, lda, b, ldb, beta, c, ldc, args, scalars, trans):
    """C(m, n) = A(m, k) @ B(k, n) + beta * C, column-major, from the first elements of the
    views a, b, c with leading dimensions lda, ldb, ldc, through the BLAS of the compute dtype
    (typed below). Callable from Numba kernels only."""


@overload(gemm)
def _gemm_typed(m, n, k, a, lda, b, ldb, beta, c, ldc, args, scalars, trans):
    routine = _GEMM_BY_DTYPE[scalars.dtype]

    def impl(m, n, k, a, lda, b, ldb, beta, c, ldc, args, scalars, trans):
        # BLAS takes every argument by pointer: ``args`` (int32) and ``scalars`` (alpha, beta
        # in the compute dtype) are the calling thread's private argument cells.
        args[0] = m
        args[1] = n
        args[2] = k
        args[3] = lda
        args[4] = ldb
        args[5] = ldc
        scalars[0] = 1
        scalars[1] = beta
        routine(trans.ctypes, trans.ctypes, args[0:].ctypes, args[1:].ctypes, args[2:].ctypes,
                scalars[0:].ctypes, a.ctypes, args[3:].ctypes, b.ctypes, args[4:].ctypes,
                scalars[1:].ctypes, c.ctypes, args[5:].ctypes)

    return impl
