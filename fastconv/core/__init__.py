"""The core every strategy builds on: the problem's geometry, padding as index maps, the
workspace budget, thread limits, the ``FASTCONV_*`` settings, the JIT factory and the BLAS
binding. Nothing here imports from planning or the strategies."""
