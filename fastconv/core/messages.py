"""The one template of every user-facing error: ``"`name` must be <expectation>; got <value>."``
plus a remedy where there is one. Raised from fastconv/_validate.py for user input, and from the
few lower places that check an argument of their own (the strategy registry)."""


class Shown(str):
    """A description of a bad argument, shown as is (values are shown by repr)."""

    def __repr__(self):
        return str(self)


# A value whose repr is longer than this is described instead (an array by its shape and dtype,
# anything else by the start of its repr): a message stays readable whatever was passed.
LONGEST_SHOWN = 200


def shown(got):
    """``got`` as a message shows it: its repr, or a description when that is too long."""
    text = repr(got)
    if len(text) <= LONGEST_SHOWN:
        return text
    shape, dtype = getattr(got, "shape", None), getattr(got, "dtype", None)
    if isinstance(shape, tuple) and dtype is not None:
        return f"{type(got).__name__} of shape {shape} and dtype {dtype}"
    return f"{text[:LONGEST_SHOWN - 40]}... (a {type(got).__name__} of {len(text)} characters)"


def message(name, expectation, got, remedy=""):
    """The template filled in."""
    text = f"`{name}` must be {expectation}; got {shown(got)}."
    return text + (f" {remedy}" if remedy else "")


def fail(exc_type, name, expectation, got, remedy=""):
    """Raise ``exc_type`` with the template filled in."""
    raise exc_type(message(name, expectation, got, remedy))


def cannot_run(method, reason):
    """The error of a forced strategy that declines the problem (``reason``: its decline)."""
    return ValueError(f"`method` {method!r} cannot run this problem: {reason}.")


def forked_after_openmp():
    """The error of a call in a child forked after its parent's GNU OpenMP threads ran (which
    would kill the child)."""
    return RuntimeError(
        "fastconv cannot run parallel kernels in a process forked after its parent ran them on "
        "the GNU OpenMP threading layer (OpenMP would kill this process). Start workers with the "
        "'spawn' or 'forkserver' method (multiprocessing.get_context('spawn')), or set "
        "NUMBA_THREADING_LAYER=forksafe (TBB, else the workqueue) before importing fastconv.")
