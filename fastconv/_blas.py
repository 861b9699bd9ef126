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
from numba.extending import get_cython_function_address

_SIGNATURE = types.void(*([types.voidptr] * 13))


def _declare(name):
    symbol = f"fastconv_{name}"
    binding.add_symbol(symbol, get_cython_function_address("scipy.linalg.cython_blas", name))
    return types.ExternalFunction(symbol, _SIGNATURE)


sgemm = _declare("sgemm")
dgemm = _declare("dgemm")
cgemm = _declare("cgemm")
zgemm = _declare("zgemm")
