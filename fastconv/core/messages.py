"""The one template of every user-facing error: ``"`name` must be <expectation>; got <value>."``
plus a remedy where there is one. Raised from fastconv/_validate.py for user input, and from the
few lower places that check an argument of their own (the strategy registry)."""


class Shown(str):
    """A description of a bad argument, shown as is (values are shown by repr)."""

    def __repr__(self):
        return str(self)


def message(name, expectation, got, remedy=""):
    """The template filled in."""
    text = f"`{name}` must be {expectation}; got {got!r}."
    return text + (f" {remedy}" if remedy else "")


def fail(exc_type, name, expectation, got, remedy=""):
    """Raise ``exc_type`` with the template filled in."""
    raise exc_type(message(name, expectation, got, remedy))


def cannot_run(method, reason):
    """The error of a forced strategy that declines the problem (``reason``: its decline)."""
    return ValueError(f"`method` {method!r} cannot run this problem: {reason}.")
