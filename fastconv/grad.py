"""Gradients of :func:`fastconv.conv2d`, mirroring :mod:`torch.nn.grad`, and the plans of the
forward problems that gradients and transposed convolutions run.

Unlike ``torch.nn.grad``, every padding mode of the forward pass has its gradient: for
``reflect``, ``replicate``, ``circular`` and ``symmetric`` padding the input gradient is folded
back onto the input positions the padding copied, as autograd through ``F.pad`` does.

Each function is computed by forward correlations of the engine, which the planner prices and
``method='auto'`` dispatches (see ``fastconv/_transpose.py`` for the identities):

* ``conv2d_input``: one correlation per stride phase of ``grad_output`` with the weight's taps of
  that phase, flipped, input and output channels swapped (the stride-phase decomposition);
  phases of more than one tap may share one correlation, their taps side by side as output
  channels, where the planner estimates it faster;
* ``conv2d_weight``: a GEMM reducing over batch and pixels (through im2col's micro-kernel on a
  channels-last copy of the input, or as 1x1 problems on the input's column matrix), or one
  correlation of the padded input with ``grad_output`` as an output-sized kernel (batch and
  channels swap roles, and so do stride and dilation), whichever the planner estimates
  fastest.

:func:`plan_input`, :func:`plan_weight` and :func:`plan_transpose` return those problems'
plans, which explain the choices as :func:`fastconv.plan` does.
"""

import numpy as np

from . import _transpose
from ._transpose import GemmPlan

__all__ = ["GemmPlan", "conv1d_input", "conv1d_weight", "conv2d_input", "conv2d_weight",
           "conv3d_input", "conv3d_weight", "plan_input", "plan_transpose", "plan_weight"]


def conv2d_input(input_shape, weight, grad_output, *, stride=1, padding=0, dilation=1, groups=1,
                 padding_mode="zeros", method="auto", threads=None):
    """Gradient of :func:`fastconv.conv2d` with respect to its input.

    Parameters
    ----------
    input_shape : tuple of int
        The forward input's shape: ``(N, C, H, W)``, ``(C, H, W)`` or ``(H, W)``.
    weight : array_like
        The forward weight ``(K, C // groups, kh, kw)`` (``(kh, kw)`` for a 2-D input).
    grad_output : array_like
        The gradient of the loss with respect to the forward output; must have the forward
        output's shape. Never modified.
    stride, padding, dilation, groups, padding_mode
        The forward call's options, as in :func:`fastconv.conv2d` (every padding form and mode).
    method : {'auto', 'measure', 'direct', ...}
        For the forward problems it runs (see :func:`plan_input`); a Plan cannot be passed.
    threads : int, optional
        As in :func:`fastconv.conv2d`.

    Returns
    -------
    numpy.ndarray
        Of shape ``input_shape``, in the compute dtype of ``weight`` and ``grad_output``
        (:func:`fastconv.conv2d`'s rules).

    Examples
    --------
    >>> import numpy as np, fastconv
    >>> w = np.ones((1, 1, 2, 2))
    >>> fastconv.grad.conv2d_input((1, 1, 3, 3), w, np.ones((1, 1, 2, 2)))
    array([[[[1., 2., 1.],
             [2., 4., 2.],
             [1., 2., 1.]]]])

    With reflect padding, the gradient of a padded sample lands on the sample it mirrors:

    >>> x_shape, w = (4,4), np.ones((3, 3))
    >>> g = fastconv.grad.conv2d_input(x_shape, w, np.ones((4, 4)), padding=1,
    ...                                padding_mode="reflect")
    >>> float(g.sum()) == 4 * 4 * 9
    True
    """
    return _transpose.input_gradient(2, input_shape, weight, grad_output, stride, padding,
                                     dilation, groups, padding_mode, method, threads)


def conv2d_weight(input, weight_shape, grad_output, *, stride=1, padding=0, dilation=1, groups=1,
                  padding_mode="zeros", method="auto", threads=None):
    """Gradient of :func:`fastconv.conv2d` with respect to its weight.

    Parameters
    ----------
    input : array_like
        The forward input ``(N, C, H, W)``, ``(C, H, W)`` or ``(H, W)``. Never modified.
    weight_shape : tuple of int
        The forward weight's shape ``(K, C // groups, kh, kw)`` (``(kh, kw)`` for a 2-D input).
    grad_output : array_like
        The gradient of the loss with respect to the forward output (its shape).
    stride, padding, dilation, groups, padding_mode, method, threads
        As in :func:`conv2d_input`.

    Returns
    -------
    numpy.ndarray
        Of shape ``weight_shape``, in the compute dtype of ``input`` and ``grad_output``.

    Examples
    --------
    >>> import numpy as np, fastconv
    >>> x = np.arange(9.0).reshape(1, 1, 3, 3)
    >>> fastconv.grad.conv2d_weight(x, (1, 1, 2, 2), np.ones((1, 1, 2, 2)))
    array([[[[ 8., 12.],
             [20., 24.]]]])
    """
    return _transpose.weight_gradient(2, input, weight_shape, grad_output, stride, padding,
                                      dilation, groups, padding_mode, method, threads)


def conv1d_input(input_shape, weight, grad_output, *, stride=1, padding=0, dilation=1, groups=1,
                 padding_mode="zeros", method="auto", threads=None):
    """Gradient of :func:`fastconv.conv1d` with respect to its input: :func:`conv2d_input` for
    ``(N, C, L)``, ``(C, L)`` or ``(L,)`` inputs and ``(K, C // groups, k)`` weights.

    Examples
    --------
    >>> import numpy as np, fastconv
    >>> fastconv.grad.conv1d_input((4,), np.array([1.0, 2.0]), np.ones(3))
    array([1., 3., 3., 2.])
    """
    return _transpose.input_gradient(1, input_shape, weight, grad_output, stride, padding,
                                     dilation, groups, padding_mode, method, threads)


def conv1d_weight(input, weight_shape, grad_output, *, stride=1, padding=0, dilation=1, groups=1,
                  padding_mode="zeros", method="auto", threads=None):
    """Gradient of :func:`fastconv.conv1d` with respect to its weight (see :func:`conv2d_weight`).

    Examples
    --------
    >>> import numpy as np, fastconv
    >>> fastconv.grad.conv1d_weight(np.arange(4.0), (2,), np.ones(3))
    array([3., 6.])
    """
    return _transpose.weight_gradient(1, input, weight_shape, grad_output, stride, padding,
                                      dilation, groups, padding_mode, method, threads)


def conv3d_input(input_shape, weight, grad_output, *, stride=1, padding=0, dilation=1, groups=1,
                 padding_mode="zeros", method="auto", threads=None):
    """Gradient of :func:`fastconv.conv3d` with respect to its input: :func:`conv2d_input` for
    ``(N, C, D, H, W)``, ``(C, D, H, W)`` or ``(D, H, W)`` inputs.

    Examples
    --------
    >>> import numpy as np, fastconv
    >>> g = fastconv.grad.conv3d_input((3, 3, 3), np.ones((2, 2, 2)), np.ones((2, 2, 2)))
    >>> g.shape, float(g[1, 1, 1]), float(g[0, 0, 0])
    ((3, 3, 3), 8.0, 1.0)
    """
    return _transpose.input_gradient(3, input_shape, weight, grad_output, stride, padding,
                                     dilation, groups, padding_mode, method, threads)


def conv3d_weight(input, weight_shape, grad_output, *, stride=1, padding=0, dilation=1, groups=1,
                  padding_mode="zeros", method="auto", threads=None):
    """Gradient of :func:`fastconv.conv3d` with respect to its weight (see :func:`conv2d_weight`).

    Examples
    --------
    >>> import numpy as np, fastconv
    >>> fastconv.grad.conv3d_weight(np.ones((3, 3, 3)), (2, 2, 2), np.ones((2, 2, 2))).shape
    (2, 2, 2)
    """
    return _transpose.weight_gradient(3, input, weight_shape, grad_output, stride, padding,
                                      dilation, groups, padding_mode, method, threads)


def plan_input(input_shape, weight_shape, *, dtype=np.float64, stride=1, padding=0, dilation=1,
               groups=1, padding_mode="zeros", method="auto", threads=None):
    """The plans of :func:`conv2d_input` (and of ``conv{1,3}d_input`` when the engine has them)
    for these shapes: one :class:`fastconv.Plan` per forward problem it runs, in order.

    A strided gradient runs one problem per stride phase (fewer when a phase meets no tap, or
    when phases share one problem where the planner estimates it faster). Each
    plan's table shows that problem: ``grad_output``'s window as the input, the phase's flipped
    taps with channels swapped as the weight. Arguments as in :func:`fastconv.plan`; the rank
    follows ``weight_shape`` (full ``(K, C // groups, *k)``, or ``(kh, kw)`` with a spatial
    input).

    Examples
    --------
    >>> import fastconv
    >>> plans = fastconv.grad.plan_input((8, 64, 56, 56), (64, 64, 3, 3), stride=2, padding=1)
    >>> len(plans), plans[0].method in fastconv.METHODS
    (4, True)
    """
    return _transpose.plan_input(input_shape, weight_shape, dtype, stride, padding, dilation,
                                 groups, padding_mode, method, threads)


def plan_weight(input_shape, weight_shape, *, dtype=np.float64, stride=1, padding=0, dilation=1,
                groups=1, padding_mode="zeros", method="auto", threads=None):
    """The plans of :func:`conv2d_weight` for these shapes, in order: one :class:`fastconv.Plan`
    per forward problem it runs, or one ``GemmPlan``. Arguments as in :func:`plan_input`.

    The weight gradient has three formulations, and the one with the lowest estimate runs:

    * float32/float64: one GEMM reducing over batch and pixels through im2col's micro-kernel,
      which reads a channels-last copy of the padded input in place (no column matrix); its
      :class:`GemmPlan` gives the GEMM as the column formulation's 1x1 problem (``geometry``), the
      estimate and the workspace. The batch runs in chunks whose copies fit the workspace
      budget;
    * a GEMM reducing over batch and pixels, as 1x1 problems: the input's column matrix
      ``(1, groups * N * Ho * Wo, C // groups * kh, kw)`` times ``grad_output`` as a
      ``(K, N * Ho * Wo, 1, 1)`` weight, one problem per batch chunk whose column matrix fits the
      workspace budget (the matrix's gathering is priced too);
    * one correlation of the input ``(C // groups, groups * N, H, W)`` with ``grad_output`` as a
      ``(K, N, Ho, Wo)`` kernel, the forward's dilation as stride and stride as dilation (FFT
      suits its large kernel).

    Examples
    --------
    >>> import fastconv
    >>> plans = fastconv.grad.plan_weight((8, 64, 56, 56), (64, 64, 3, 3), padding=1)
    >>> sum(p.geometry.macs for p in plans) == 8 * 64 * 56 * 56 * 64 * 9
    True
    """
    return _transpose.plan_weight(input_shape, weight_shape, dtype, stride, padding, dilation,
                                  groups, padding_mode, method, threads)


def plan_transpose(input_shape, weight_shape, *, dtype=np.float64, stride=1, padding=0,
                   output_padding=0, groups=1, dilation=1, method="auto", threads=None):
    """The plans of :func:`fastconv.conv_transpose2d` for these shapes: one
    :class:`fastconv.Plan` per problem of stride phases it runs (see :func:`plan_input`).

    Examples
    --------
    >>> import fastconv
    >>> plans = fastconv.grad.plan_transpose((8, 256, 16, 16), (256, 128, 4, 4), stride=2,
    ...                                      padding=1)
    >>> [p.geometry.kernel_height for p in plans]
    [2, 2, 2, 2]
    """
    return _transpose.plan_transposed(input_shape, weight_shape, dtype, stride, padding,
                                      output_padding, groups, dilation, method, threads)
