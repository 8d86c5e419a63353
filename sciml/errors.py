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


class SimulationDiverged(SciMLError):
    """A time integration that produced non-finite values or blew up; nothing of it is returned.

    ``sample`` and ``step`` locate the first failure (the sample's index in the batch the
    integrator was given, unless the raiser documents otherwise, and the time step counted
    from 1); ``time`` is the simulated time after that step.
    """

    def __init__(self, message: str, sample: int, step: int, time: float):
        super().__init__(message)
        self.sample, self.step, self.time = sample, step, time

    def __reduce__(self):  # keep the location when pickled (e.g. sent back from a worker process)
        return type(self), (str(self), self.sample, self.step, self.time)
