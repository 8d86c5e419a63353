"""Errors a user can act on.

Every exception raised for bad input derives from :class:`SciMLError`. Its message is
one line that says what is wrong and what to do; the command line prints it and exits
non-zero without a traceback.
"""


class SciMLError(Exception):
    """Bad input or a failed computation, described in one actionable line."""


class UnknownNameError(SciMLError, KeyError):
    """A PDE, model, solver, preconditioner or benchmark name that is not registered."""

    def __str__(self):  # KeyError would otherwise quote the message
        return str(self.args[0]) if self.args else ""


class DataFileError(SciMLError):
    """A dataset file that is missing, truncated, foreign or does not fit its use."""


class ConvergenceError(SciMLError):
    """An iterative method that did not reach its tolerance."""
