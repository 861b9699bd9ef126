"""Types of the public API's arguments, for annotations only (mypy reads them; nothing checks
them at run time: _validate.py does). Their literals are the registries' names, which
tests/typing/test_typing.py checks."""

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

import numpy as np
from numpy.typing import ArrayLike, DTypeLike, NDArray

if TYPE_CHECKING:
    from .planning.plan import Plan

Pair: TypeAlias = int | tuple[int, ...]
Padding: TypeAlias = (int | tuple[int, ...] | tuple[tuple[int, int], ...]
                      | Literal["valid", "same", "full"])
PaddingMode: TypeAlias = Literal["zeros", "reflect", "replicate", "circular", "symmetric"]
StrategyName: TypeAlias = Literal["direct", "im2col", "fft", "winograd", "separable"]
PlanMethod: TypeAlias = Literal["auto"] | StrategyName
MethodName: TypeAlias = Literal["auto", "measure"] | StrategyName
Method: TypeAlias = "MethodName | Plan"
Mode: TypeAlias = Literal["full", "same", "valid"]
Boundary: TypeAlias = Literal["fill", "pad", "wrap", "circular", "symm", "symmetric"]
Scalar: TypeAlias = complex | np.number[Any] | np.bool_
Shape: TypeAlias = Sequence[int]
Array: TypeAlias = NDArray[Any]

__all__ = ["Array", "ArrayLike", "Boundary", "DTypeLike", "Method", "MethodName", "Mode",
           "Padding", "PaddingMode", "Pair", "PlanMethod", "Scalar", "Shape", "StrategyName"]
