"""Single images: fastconv.correlate2d (every method and 'auto') against the SciPy, OpenCV and
PyTorch peers, one case per (image size, kernel, mode, dtype, threads, library)."""

from harness import run_case


def test_single_image(benchmark, image_case, bench_state):
    run_case(benchmark, image_case, bench_state)
