"""Pure Numba kernels, one module per strategy. They take validated, C-contiguous arrays and a
preallocated output, write it and return nothing. Nothing here checks user input."""
