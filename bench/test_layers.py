"""NCHW layers: fastconv.conv2d (every method and 'auto') against torch.nn.functional.conv2d,
one case per (layer, dtype, threads, library)."""

from harness import run_case


def test_layer(benchmark, layer_case, bench_state):
    run_case(benchmark, layer_case, bench_state)
