"""The CPU that Numba compiles for, which is not always the host: ``NUMBA_CPU_NAME`` and
``NUMBA_CPU_FEATURES`` choose another target (portable caches, tests of other CPUs).

Numba gives LLVM the named CPU with the *host's* features unless ``NUMBA_CPU_FEATURES`` is set
(numba.core.codegen.CPUCodegen._get_host_cpu_features); a named CPU's own features apply only
with a feature string, e.g. ``NUMBA_CPU_NAME=haswell NUMBA_CPU_FEATURES=+64bit``.
"""

from functools import cache

from llvmlite import binding
from numba.core import config
from numba.core.codegen import get_host_cpu_features

# Two functions whose assembly shows whether the target has 512-bit registers and vector FMAs.
_PROBE = """
declare <8 x float> @llvm.fma.v8f32(<8 x float>, <8 x float>, <8 x float>)

define void @wide(ptr %p) #0 {
  %v = load <16 x float>, ptr %p
  %w = fadd <16 x float> %v, %v
  store <16 x float> %w, ptr %p
  ret void
}

define void @fused(ptr %p) {
  %v = load <8 x float>, ptr %p
  %w = call <8 x float> @llvm.fma.v8f32(<8 x float> %v, <8 x float> %v, <8 x float> %v)
  store <8 x float> %w, ptr %p
  ret void
}

attributes #0 = { "min-legal-vector-width"="512" "prefer-vector-width"="512" }
"""


def cpu_name():
    """The LLVM CPU name Numba compiles for."""
    return config.CPU_NAME or binding.get_host_cpu_name()


def feature_string():
    """The LLVM feature string Numba compiles with (empty: the named CPU's own features)."""
    return config.CPU_FEATURES if config.CPU_FEATURES is not None else get_host_cpu_features()


@cache
def _probed(cpu, features):
    """{"avx512f", "fma"} as far as LLVM compiles them for ``cpu`` with ``features``."""
    binding.initialize_native_target()
    binding.initialize_native_asmprinter()
    module = binding.parse_assembly(_PROBE)
    machine = binding.Target.from_default_triple().create_target_machine(
        cpu=cpu, features=features, opt=2)
    assembly = machine.emit_assembly(module)
    wide, fused = assembly.split("fused:", 1)
    return frozenset(name for name, present in
                     (("avx512f", "zmm" in wide), ("fma", "vfmadd" in fused)) if present)


def has(feature):
    """Whether the target has ``feature`` ("avx512f" or "fma")."""
    features = feature_string()
    if config.CPU_FEATURES is None:
        # The host's features, whatever NUMBA_CPU_NAME says: read them, nothing to compile.
        return f"+{feature}" in features.split(",")
    return feature in _probed(cpu_name(), features)


def vector_bits():
    """The widest vector registers of the target: 512 bits with AVX-512, else 256 (AVX2)."""
    return 512 if has("avx512f") else 256
