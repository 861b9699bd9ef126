"""The direct strategy beyond the shared oracle suites: its passes of taps and the routes its
kernel takes by output width, each against the oracle."""

import numpy as np
import pytest
from oracle import check_conv2d, random_layer

from fastconv.strategies.direct.kernels import (
    COLUMN_CHUNK,
    FLAT_BELOW,
    PRESET_BELOW,
    UNIT_ROWS_FROM,
    first_pass_taps,
)


def test_direct_first_pass_leaves_whole_passes_of_four():
    """The direct kernel reads taps first, first + 4, ... four at a time: a remainder would read
    past the taps."""
    for taps in range(1, 400):
        first = first_pass_taps(taps)
        assert first in (1, 2, 3, 4, 5, 9) and first <= taps, (taps, first)
        assert (taps - first) % 4 == 0, (taps, first)
    assert first_pass_taps(9) == 9  # 3x3 in one fused pass


@pytest.mark.parametrize("kernel", [(3, 3), (2, 3), (1, 7), (5, 5), (3, 4), (4, 4)])
@pytest.mark.parametrize("channels", [1, 2, 3])
def test_direct_every_first_pass_count(kernel, channels, rng):
    """Tap counts whose first pass takes 1 to 5 and 9 taps, each against the oracle."""
    for dtype in (np.float32, np.float64):
        x, w, bias = random_layer(rng, (2, channels, 11, 13), (2, channels, *kernel), dtype)
        check_conv2d("direct", x, w, bias, padding=1)


def _route_widths():
    """Output widths on both sides of the direct kernel's route limits (padding 1, 3x3)."""
    # The strip is two columns wider than the output; preset strips are narrower than the limit.
    limits = (UNIT_ROWS_FROM, COLUMN_CHUNK + 1, PRESET_BELOW - 2)
    return sorted({limit + step for limit in limits for step in (-1, 0)})


@pytest.mark.parametrize("width", _route_widths())
@pytest.mark.parametrize("padding_mode", ["zeros", "reflect"])
@pytest.mark.parametrize("stride", [(1, 1), (2, 1), (1, 2)])
def test_direct_row_routes(width, padding_mode, stride, rng):
    """Single-channel 3x3 layers (depthwise) on both sides of the direct kernel's route limits:
    flat ranges below UNIT_ROWS_FROM output columns, unit rows up to COLUMN_CHUNK, chunked rows
    above; constant padding preset on strips narrower than PRESET_BELOW, swept on wider ones."""
    for dtype in (np.float32, np.float64):
        x, w, bias = random_layer(rng, (2, 3, 6, width), (3, 1, 3, 3), dtype)
        check_conv2d("direct", x, w, bias, padding=1, groups=3, stride=stride,
                     padding_mode=padding_mode)
        check_conv2d("direct", x, w, bias, padding=(0, 2), groups=3, dilation=(2, 1),
                     padding_mode=padding_mode)


@pytest.mark.parametrize("stride", [(2, 2), (3, 1), (2, 3)])
@pytest.mark.parametrize("kernel, dilation", [((3, 3), (1, 1)), ((4, 2), (2, 1)), ((5, 5), (1, 2))])
@pytest.mark.parametrize("padding_mode", ["zeros", "circular"])
def test_direct_row_strides(stride, kernel, dilation, padding_mode, rng):
    """Row strides, where the strip holds each row phase as its own run of rows: short rows as
    one flat range and rows FLAT_BELOW outputs wide or wider a pass each, several channels, an
    odd height whose output rows the row blocks do not divide."""
    for width in (23, FLAT_BELOW * stride[1] + 5):
        for dtype in (np.float32, np.float64):
            x, w, bias = random_layer(rng, (1, 3, 37, width), (4, 3, *kernel), dtype)
            check_conv2d("direct", x, w, bias, padding=2, stride=stride, dilation=dilation,
                         padding_mode=padding_mode)
