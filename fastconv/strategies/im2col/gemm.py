"""A GEMM micro-kernel (float32/float64) written in LLVM IR for an implicit-GEMM convolution: it
reads the input pixels straight from a padded copy of the image through a table of offsets (no
unfolded column buffer), and the weights from panels packed once per call.

One call adds to a tile of C, ``rows`` pixels x ``vectors`` vectors of output channels::

    c[r * ldc + v * lanes + l] += sum over d < depth of
        x[offsets[d] + r] * w[d * vectors * lanes + v * lanes + l]

Unfolded row d = (c, p, q) of pixel u is ``x[offsets[d] + u]``: with pixels numbered along the
padded rows (u = i * padded_width + j), the input of every kernel tap is a constant shift of u.
The rows * vectors accumulators stay in registers for the whole depth; per step each weight
vector loaded is used ``rows`` times and each broadcast pixel ``vectors`` times. Numba cannot
express this (its loops vectorise one axis and LLVM's SLP vectoriser keeps no 2-D register
tile), hence the IR.

Pixels are broadcast scalars, weights the vectors: vectors of pixels at the offsets of kernel
columns q = 1, 2 would be unaligned loads splitting cache lines. On the GEMM of 64->64 3x3 fp32
(8 x 56 x 56 pixels), consecutive runs: pixel vectors through the offset table 110 GF/s, this
orientation 120-129 GF/s (up to 190 GF/s, the kernel's L1 peak, when the machine is quiet;
with the 6 x 4 tile of the time);
packing the pixels into aligned panels instead (a copy of 9x the input) lost more than it gained:
0.69x torch end to end, vs 0.86-0.93x for this kernel.
"""

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, overload

from ...core.target import vector_bits

# The target's vector width (the CPU Numba compiles for: NUMBA_CPU_NAME/NUMBA_CPU_FEATURES, else
# the host): 512-bit registers with AVX-512 (32 of them), else 256 bits (AVX2: 16 registers).
# Numba's cache is keyed by the target CPU and features, so a cached kernel never meets another
# width.
VECTOR_BITS = vector_bits()
# Register tile per element size in bytes: ``rows`` broadcast pixels x ``vectors`` weight
# vectors of accumulators. 512-bit: 12 x 2 (fp32) or 6 x 4 (fp64) = 24 accumulators + the weight
# vectors + 1 broadcast of 32 registers (no spills); either way a panel of output channels is 32
# wide, so 32-channel layers fill whole panels. 256-bit: 6 x 2 = 12 + 2 + 1 of 16 registers (the
# classic Haswell tile). fp32 12 x 2 against 6 x 4 (64-wide panels), im2col alone, batch 8, 2
# threads, one run: 32->32 3x3 on 112x112 16.9 -> 10.7 ms (BLAS ran it: 32 channels filled no
# panel), 64->64 on 56x56 11.2 -> 10.0 ms, 512->512 on 7x7 17.2 -> 14.1 ms, 1024->256 1x1 on
# 14x14 5.5 -> 4.9 ms; fp64 kept 6 x 4: 12 x 2 (16-wide panels) was 1-15% slower on the same
# layers.
TILES = {4: (12, 2), 8: (6, 4)} if VECTOR_BITS == 512 else {4: (6, 2), 8: (6, 2)}


def lanes(itemsize):
    """Elements per vector register for an element of ``itemsize`` bytes."""
    return VECTOR_BITS // (8 * itemsize)


def tile_rows(itemsize):
    """Pixels per micro-kernel call: the rows of the register tile."""
    return TILES[itemsize][0]


def panel_width(itemsize):
    """Output channels per packed weight panel."""
    return TILES[itemsize][1] * lanes(itemsize)


def micro_rows(array):
    """tile_rows() for the dtype of ``array`` in compiled code, as a compile-time constant."""


@overload(micro_rows)
def _micro_rows(array):
    rows = tile_rows(array.dtype.bitwidth // 8)
    return lambda array: rows


def panel_elements(array):
    """panel_width() for the dtype of ``array`` in compiled code, as a compile-time constant (an
    array's itemsize attribute is read at run time, leaving loops with unknown trip counts)."""


@overload(panel_elements)
def _panel_elements(array):
    width = panel_width(array.dtype.bitwidth // 8)
    return lambda array: width


class _Attributes(ir.values.FunctionAttributes):
    """llvmlite accepts only the attributes it knows; these two are string attributes."""

    _known = ir.values.FunctionAttributes._known | frozenset(
        {'"min-legal-vector-width"="512"', '"prefer-vector-width"="512"'})


def _define(module, dtype_bits, llvm_type, rows, vectors, bits):
    """The micro-kernel as an LLVM function of (depth, w, x, offsets, c, ldc, accumulate) in
    ``module``,
    defined once per module."""
    name = f"fastconv_gemm_f{dtype_bits}_{rows}x{vectors}_{bits}"
    function = module.globals.get(name)
    if function is not None:
        return function
    count = bits // dtype_bits
    vector = ir.VectorType(llvm_type, count)
    i64 = ir.IntType(64)
    i32 = ir.IntType(32)
    pointer = llvm_type.as_pointer()
    function = ir.Function(module, ir.FunctionType(
        ir.VoidType(), [i64, pointer, pointer, i64.as_pointer(), pointer, i64, i64]), name)
    # Internal: private to the module. noinline: one small function, register-allocated on its
    # own rather than inside the kernel's large parallel body.
    function.linkage = "internal"
    function.attributes = _Attributes()
    function.attributes.add("noinline")
    function.attributes.add("nounwind")
    if bits == 512:
        # On AVX-512 hosts LLVM prefers 256-bit vectors (frequency licence) and would split every
        # 512-bit operation into two halves; here the 32 zmm registers are the point.
        function.attributes.add('"min-legal-vector-width"="512"')
        function.attributes.add('"prefer-vector-width"="512"')
    depth, w, x, offsets, c, ldc, accumulate = function.args
    for argument in (w, x, offsets, c):
        # The operands never alias C: lets LLVM keep the accumulators out of memory.
        argument.add_attribute("noalias")
    entry = function.append_basic_block("entry")
    loop = function.append_basic_block("loop")
    done = function.append_basic_block("done")
    builder = ir.IRBuilder(entry)
    builder.branch(loop)
    builder = ir.IRBuilder(loop)
    d = builder.phi(i64)  # a do-while loop: depth >= 1
    # The accumulators are SSA values carried by phi nodes: registers, never memory.
    accumulators = [[builder.phi(vector) for _ in range(vectors)] for _ in range(rows)]
    # Declared by hand: llvmlite's builder has no vector fma. One rounding per multiply-add,
    # as the 'contract' fastmath flag gives elsewhere.
    fma_name = f"llvm.fma.v{count}f{dtype_bits}"
    fma = module.globals.get(fma_name) or ir.Function(
        module, ir.FunctionType(vector, [vector] * 3), fma_name)
    alignment = dtype_bits // 8  # packed panels are only element-aligned
    base = builder.mul(d, ir.Constant(i64, vectors * count))
    weights = [builder.load(builder.bitcast(builder.gep(w, [builder.add(
        base, ir.Constant(i64, v * count))]), vector.as_pointer()), align=alignment)
        for v in range(vectors)]
    row = builder.gep(x, [builder.load(builder.gep(offsets, [d]))])
    undefined = ir.Constant(vector, ir.Undefined)
    splat = ir.Constant(ir.VectorType(i32, count), [0] * count)
    updated = []
    for r in range(rows):
        pixel = builder.load(builder.gep(row, [ir.Constant(i64, r)]))
        broadcast = builder.shuffle_vector(
            builder.insert_element(undefined, pixel, ir.Constant(i32, 0)), undefined, splat)
        updated.append([builder.call(fma, [broadcast, weights[v], accumulators[r][v]])
                        for v in range(vectors)])
    following = builder.add(d, ir.Constant(i64, 1))
    d.add_incoming(ir.Constant(i64, 0), entry)
    d.add_incoming(following, loop)
    for r in range(rows):
        for v in range(vectors):
            accumulators[r][v].add_incoming(ir.Constant(vector, None), entry)
            accumulators[r][v].add_incoming(updated[r][v], loop)
    builder.cbranch(builder.icmp_unsigned("<", following, depth), loop, done)
    # C = acc for the first depth block, C += acc after it: the tile needs no zeroing pass.
    builder = ir.IRBuilder(done)
    add = function.append_basic_block("add")
    store = function.append_basic_block("store")
    finish = function.append_basic_block("finish")
    builder.cbranch(builder.icmp_unsigned("!=", accumulate, ir.Constant(i64, 0)), add, store)
    for block, adding in ((add, True), (store, False)):
        builder = ir.IRBuilder(block)
        for r in range(rows):
            for v in range(vectors):
                offset = builder.add(builder.mul(ldc, ir.Constant(i64, r)),
                                     ir.Constant(i64, v * count))
                target = builder.bitcast(builder.gep(c, [offset]), vector.as_pointer())
                value = updated[r][v]
                if adding:
                    value = builder.fadd(builder.load(target, align=alignment), value)
                builder.store(value, target, align=alignment)
        builder.branch(finish)
    builder = ir.IRBuilder(finish)
    builder.ret_void()
    return function


def make_microkernel(tiles, bits):
    """An intrinsic ``kernel(depth, w, w_offset, x, x_offset, offsets, d0, c, c_offset, ldc,
    accumulate)``: the update of the module docstring (``=`` instead of ``+=`` when accumulate is
    0) with w, x, offsets, c starting at w_offset, x_offset, d0, c_offset (1-D arrays; w, x, c of
    one float dtype, offsets int64; depth >= 1, ints int64). No bounds checking: every
    x[offsets[d] + r] read must lie inside x. The register tile is ``tiles[itemsize]`` (rows,
    vectors) for ``bits``-wide vectors."""

    @intrinsic
    def kernel(typingctx, depth, w, w_offset, x, x_offset, offsets, d0, c, c_offset, ldc,
               accumulate):
        signature = types.void(depth, w, w_offset, x, x_offset, offsets, d0, c, c_offset, ldc,
                               accumulate)

        def codegen(context, builder, signature, args):
            # Integer arguments as int64, whatever Numba typed them (a flag may be a bool).
            args = [context.cast(builder, value, kind, types.int64)
                    if isinstance(kind, (types.Integer, types.Boolean)) else value
                    for value, kind in zip(args, signature.args, strict=True)]
            depth_v, w_v, w_off, x_v, x_off, o_v, o_off, c_v, c_off, ldc_v, acc_v = args
            rows, vectors = tiles[w.dtype.bitwidth // 8]
            function = _define(builder.module, w.dtype.bitwidth,
                               context.get_value_type(w.dtype), rows, vectors, bits)

            def address(array_type, value, offset):
                array = cgutils.create_struct_proxy(array_type)(context, builder, value=value)
                return builder.gep(array.data, [offset])

            builder.call(function, [depth_v, address(w, w_v, w_off), address(x, x_v, x_off),
                                    address(offsets, o_v, o_off), address(c, c_v, c_off), ldc_v,
                                    acc_v])
            return context.get_dummy_value()

        return signature, codegen

    return kernel


microkernel = make_microkernel(TILES, VECTOR_BITS)
