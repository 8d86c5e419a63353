"""The drop-in contract of every learned preconditioner in :mod:`sciml.solvers`.

A learned preconditioner is bound to one matrix ``A`` and maps a residual ``r`` to a
direction ``z ~ A^-1 r`` by running a network. :meth:`LearnedPreconditioner.aspreconditioner`
wraps that map as a :class:`scipy.sparse.linalg.LinearOperator` (numpy in, numpy out),
the shape of pyamg's ``MultilevelSolver.aspreconditioner()``, so it goes wherever an
``M=`` goes: scipy's :func:`~scipy.sparse.linalg.gcrotmk`, pyamg's
:func:`pyamg.krylov.fgmres`, and the solvers here.

A network is a *nonlinear* map: ``M(r1 + r2) != M(r1) + M(r2)``. CG and (non-flexible)
GMRES assume a fixed linear ``M`` (CG moreover a symmetric positive definite one); with
a nonlinear ``M`` they lose the orthogonality their short recurrences rely on and may
stagnate or diverge. Use a *flexible* Krylov method, which stores the preconditioned
vectors it used: FGMRES (Saad 1993; pyamg's ``fgmres``), GCROT(m, k) (scipy's
``gcrotmk``, flexible by construction), flexible CG (Notay 2000), or DCDM
(:func:`sciml.solvers.deep_conjugate_direction.dcdm_result`), which is a flexible conjugate direction method
built around the network.

References
----------
Y. Saad, "A flexible inner-outer preconditioned GMRES algorithm", SIAM J. Sci. Comput.
14(2), 1993. Y. Notay, "Flexible conjugate gradients", SIAM J. Sci. Comput. 22(4), 2000.

Examples
--------
>>> import numpy as np
>>> import scipy.sparse as sp
>>> from scipy.sparse.linalg import gcrotmk
>>> class Scaled(LearnedPreconditioner):          # a stand-in for a network
...     def _direction(self, r):
...         return r / 4.0
>>> A = sp.diags_array([-1.0, 4.0, -1.0], offsets=[-1, 0, 1], shape=(20, 20))
>>> M = Scaled(A.shape[0]).aspreconditioner()
>>> x, info = gcrotmk(A, np.ones(20), M=M, rtol=1e-10)
>>> info
0
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod

import numpy as np
from scipy.sparse.linalg import LinearOperator

from sciml.errors import SciMLError

__all__ = ["LearnedPreconditioner"]


class LearnedPreconditioner(ABC):
    """Base class: a (possibly nonlinear) map ``r -> z ~ A^-1 r`` for one n-by-n ``A``.

    Subclasses implement :meth:`_direction` (a float64 vector of length ``n`` in and
    out); this class checks the vector, times the calls and wraps the map as a
    LinearOperator. The map need not be linear: see the module docstring for the
    Krylov methods that accept it (flexible ones: FGMRES, FCG, ``gcrotmk``, DCDM).

    Parameters
    ----------
    n : int
        Size of the system the preconditioner is bound to.

    Attributes
    ----------
    calls : int
        Applications so far.
    network_seconds : float
        Wall time spent inside :meth:`_direction` so far.

    Examples
    --------
    >>> import numpy as np
    >>> class Identity(LearnedPreconditioner):
    ...     def _direction(self, r):
    ...         return r.copy()
    >>> M = Identity(3)
    >>> M.apply(np.ones(3)), M.calls
    (array([1., 1., 1.]), 1)
    """

    def __init__(self, n: int):
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise SciMLError(f"a preconditioner needs a system size n >= 1, got {n!r}")
        self.n = int(n)
        self.calls = 0
        self.network_seconds = 0.0

    @property
    def shape(self) -> tuple[int, int]:
        return (self.n, self.n)

    @abstractmethod
    def _direction(self, r: np.ndarray) -> np.ndarray:
        """The direction for the residual ``r`` (float64, shape ``(n,)``), same shape."""

    def apply(self, r) -> np.ndarray:
        """``z = M(r)`` for a vector of length ``n`` (shape ``(n,)`` or ``(n, 1)``), as float64."""
        r = np.asarray(r)
        column = r.ndim == 2 and r.shape[1] == 1
        vector = r[:, 0] if column else r
        if vector.shape != (self.n,):
            raise SciMLError(f"the preconditioner is bound to a {self.n}x{self.n} system but got a vector of shape "
                             f"{r.shape}; build it for this A")
        if np.iscomplexobj(vector):
            raise SciMLError("learned preconditioners act on real residuals; got a complex vector")
        started = time.perf_counter()
        z = np.asarray(self._direction(np.asarray(vector, dtype=np.float64)), dtype=np.float64)
        self.network_seconds += time.perf_counter() - started
        self.calls += 1
        return z[:, None] if column else z

    def aspreconditioner(self) -> LinearOperator:
        """The map as an n-by-n float64 LinearOperator (numpy in, numpy out) for ``M=``.

        It is nonlinear in general: give it to a flexible method (pyamg's ``fgmres``,
        scipy's ``gcrotmk``, :func:`~sciml.solvers.deep_conjugate_direction.dcdm_result`), not to CG or GMRES.

        Examples
        --------
        >>> import numpy as np
        >>> class Half(LearnedPreconditioner):
        ...     def _direction(self, r):
        ...         return r / 2
        >>> M = Half(2).aspreconditioner()
        >>> M.shape, M @ np.array([2.0, 4.0])
        ((2, 2), array([1., 2.]))
        """
        return LinearOperator(self.shape, matvec=self.apply, dtype=np.float64)
