"""The recycle space a caller carries from one linear solve to the next.

Krylov recycling (Parks, de Sturler, Mackey, Johnson, Maiti, "Recycling Krylov
subspaces for sequences of linear systems", SIAM J. Sci. Comput. 28, 2006) keeps a
few vectors ``U`` that span the slowest part of the last system's Krylov space and
deflates them from the next one. The space is an explicit object: the caller creates
it, passes it to every solve (``recycle=space``) and may inspect, clear or save it;
the solver never hides it.

Two matrices are kept, both ``n x k``:

- ``U``: the recycled directions;
- ``C = Op U`` with ``C^H C = I`` for the operator ``Op`` the space is *bound* to
  (``A``: both GCRO-DR and recycled CG keep ``U`` in the solution variable, so a
  preconditioner may change without touching the space)

:meth:`RecycleSpace.bind` makes the pair valid for a new operator: when the operator
is the one the space was built on (same :func:`operator_key`) it is reused as it is;
otherwise ``C = Op U`` is recomputed as one block product and re-orthonormalised by a
QR factorisation, ``U <- U R^{-1}`` (Cholesky QR, twice, when ``C`` is well
conditioned; else a pivoted Householder QR, dropping directions that became
numerically dependent). :meth:`RecycleSpace.store` skips that QR when the ``C`` it is given has
orthonormal columns already (GCRO-DR's ``C`` does; recycled CG makes its ``C``
orthonormal in the small space): checking the Gram matrix costs about a fifth of a
pivoted QR.

A method that also needs ``M C`` for its preconditioner ``M`` (recycled CG's
Rayleigh-Ritz step) may store it beside ``U`` and ``C`` (:attr:`RecycleSpace.MC`); it
follows every change of basis of ``C`` and is forgotten when the operator or ``M``
changes, so it saves ``size`` applications of ``M`` per solve only while both stay
the same (a fixed operator with varying right-hand sides).

A method may also keep its working blocks with the space (:meth:`RecycleSpace.scratch`),
so that a sequence of solves reuses their memory instead of faulting fresh pages in.

A method whose ``U`` lives in the solution variable of a right-preconditioned solve
(GCRO-DR) may also keep ``Y ~ M^{-1} U`` (:attr:`RecycleSpace.preimage`), the
directions in the preconditioned variable, for its harmonic Ritz problem. It follows
every change of basis of ``U`` and, unlike ``MC``, is *kept* when the operator or ``M``
changes: it is then the previous preconditioner's preimage, an approximation the
method may use for selection only (never for the solution). Without it, rebinding to
a new ``A`` and ``M`` costs ``size`` products with ``A`` and no application of ``M``.

Examples
--------
>>> import numpy as np
>>> import scipy.sparse as sp
>>> A = sp.diags_array([-1.0, 2.5, -1.0], offsets=[-1, 0, 1], shape=(50, 50)).tocsr()
>>> space = RecycleSpace(k=3)
>>> space.store(np.eye(50)[:, :3], A @ np.eye(50)[:, :3], key=operator_key(A), method="demo")
>>> space.size, space.bind(A, operator_key(A))          # same operator: no products
(3, 0)
>>> B = (A * 2.0).tocsr()
>>> space.bind(B, operator_key(B))                      # new operator: 3 products
3
>>> bool(np.allclose(space.C.T @ space.C, np.eye(3)))
True
"""

from __future__ import annotations

import hashlib

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp
from scipy.sparse.linalg import LinearOperator

from sciml.errors import SciMLError

DEPENDENCE_TOLERANCE = 1e-10
"""A direction is dropped when its diagonal entry in ``R`` falls below this times the largest."""

ORTHONORMAL_TOLERANCE = 1e-12
""":meth:`RecycleSpace.store` keeps ``C`` as it is when ``max|C^H C - I|`` is at most this."""

CHOLESKY_QR_CONDITION = 1e6
"""``C`` is orthonormalised by Cholesky QR (two passes) when the first pass's ``R`` has a
2-norm condition number below this; otherwise by a pivoted Householder QR."""


class OperatorKey(str):
    """:func:`operator_key`'s fingerprint; it holds the objects it names by identity.

    Python reuses the ``id`` of a freed object, so a new LinearOperator could get the
    fingerprint of a freed one; while a space keeps the key, the objects stay alive and
    their ids cannot be reused.
    """

    held: tuple = ()


def operator_key(A, M=None) -> OperatorKey:
    """A fingerprint of the operator ``A`` (and preconditioner ``M``), equal iff they are unchanged.

    Sparse matrices and arrays are hashed by their entries and structure; a
    LinearOperator or a preconditioner object by its identity, since its entries
    cannot be read (the key holds such objects: :class:`OperatorKey`).

    Examples
    --------
    >>> import numpy as np
    >>> operator_key(np.eye(2)) == operator_key(np.eye(2)), operator_key(np.eye(2)) == operator_key(2 * np.eye(2))
    (True, False)
    """
    digest = hashlib.sha256()  # SHA-NI makes it about twice as fast as blake2b here
    held = []
    for item in (A, M):
        if item is None:
            digest.update(b"none")
        elif sp.issparse(item):
            item = item.tocsr() if item.format not in ("csr", "csc") else item
            digest.update(f"{item.format}{item.shape}{item.dtype}".encode())
            for part in (item.indptr, item.indices, item.data):
                digest.update(np.ascontiguousarray(part).view(np.uint8))
        elif isinstance(item, np.ndarray):
            digest.update(f"{item.shape}{item.dtype}".encode())
            digest.update(np.ascontiguousarray(item).view(np.uint8))
        else:
            digest.update(f"object{id(item)}".encode())
            held.append(item)
    key = OperatorKey(digest.hexdigest())
    key.held = tuple(held)
    return key


class RecycleSpace:
    """Up to ``k`` recycled directions ``U`` with ``C = Op U`` orthonormal, carried across solves.

    Parameters
    ----------
    k : int
        The most directions kept (GCRO-DR's ``k``; the paper's reference run uses 20).

    Attributes
    ----------
    U, C : ndarray or None
        ``n x size`` arrays (None while empty); ``C = Op U`` and ``C^H C = I`` for the
        operator the space is bound to.
    key : str or None
        :func:`operator_key` of that operator.
    method : str or None
        The solver that filled the space; another solver refuses it, since each
        method keeps its own kind of directions (GCRO-DR's tag, ``"gcrodr-x"``, marks
        ``U`` in the solution variable; a space of the older preconditioned-variable
        GCRO-DR, tagged ``"gcrodr"``, is refused).
    dropped : int
        Directions dropped so far as numerically dependent.
    MC : ndarray or None
        ``M C`` for the preconditioner object :attr:`preconditioner`, when the method
        that filled the space stored it; None otherwise, and after any rebinding.
    preconditioner : object or None
        The preconditioner ``MC`` belongs to (held, so that identity is a safe test).
    preimage : ndarray or None
        ``Y`` with ``M Y ~ U`` for the last preconditioner used, when the method that
        filled the space stored it; kept (not recomputed) across rebinding.

    Examples
    --------
    >>> space = RecycleSpace(k=20)
    >>> space.size, space.is_empty
    (0, True)
    """

    def __init__(self, k: int):
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise SciMLError(f"a recycle space needs k >= 1 directions, got {k!r}")
        self.k = int(k)
        self.U: np.ndarray | None = None
        self.C: np.ndarray | None = None
        self.key: str | None = None
        self.method: str | None = None
        self.dropped = 0
        self.MC: np.ndarray | None = None
        self.preconditioner = None
        self.preimage: np.ndarray | None = None
        self._scratch: tuple[np.ndarray, ...] = ()

    @property
    def size(self) -> int:
        """Number of directions held now."""
        return 0 if self.U is None else self.U.shape[1]

    @property
    def is_empty(self) -> bool:
        return self.size == 0

    def clear(self) -> None:
        """Forget every direction (the next solve starts without recycling)."""
        self.U = self.C = self.key = None
        self.MC = self.preconditioner = self.preimage = None
        self._scratch = ()

    def scratch(self, n: int, dtype, width: int, count: int = 3) -> tuple[np.ndarray, ...]:
        """``count`` column-major ``n x width`` work arrays, the same memory from one solve to the next.

        A method's working blocks (recycled CG's ``[W, P]``, ``A [W, P]``, ``M A [W, P]``)
        live here between solves, so that a sequence of solves does not fault fresh pages
        in for them every time (on sorted 100^2 Poisson systems, 27 page faults a recycled
        CG solve instead of 380, about 1 ms of a 20 ms solve on a loaded machine).
        The contents are undefined; the arrays are reallocated when ``n``, ``dtype`` or
        ``count`` change or more columns are asked for, and released by :meth:`clear`.

        Examples
        --------
        >>> space = RecycleSpace(k=2)
        >>> first = space.scratch(5, float, 3)
        >>> [block.shape for block in first], space.scratch(5, float, 2)[0].base is first[0].base
        ([(5, 3), (5, 3), (5, 3)], True)
        """
        dtype = np.dtype(dtype)
        held = self._scratch
        if (len(held) != count or not held or held[0].shape[0] != n or held[0].dtype != dtype
                or held[0].shape[1] < width):
            held = self._scratch = tuple(np.empty((n, width), dtype=dtype, order="F") for _ in range(count))
        return tuple(block[:, :width] for block in held)

    def check_compatible(self, n: int, dtype, method: str) -> None:
        """Refuse a space built for another system size, dtype or method (one clear line).

        A real space may serve a complex system (it is promoted); a complex space may
        not serve a real one.
        """
        if self.method is not None and self.method != method:
            raise SciMLError(
                f"this recycle space was filled by {self.method!r}, not {method!r}; "
                "give each method its own RecycleSpace"
            )
        if self.is_empty:
            return
        if self.U.shape[0] != n:
            raise SciMLError(
                f"the recycle space holds vectors of length {self.U.shape[0]}, but the system has "
                f"{n} unknowns; use a new RecycleSpace (or clear() it) for a system of another size"
            )
        if np.iscomplexobj(self.U) and not np.issubdtype(np.dtype(dtype), np.complexfloating):
            raise SciMLError(
                f"the recycle space is complex ({self.U.dtype}) but the system is {np.dtype(dtype)}; "
                "use a new RecycleSpace for real systems"
            )

    def bind(self, operator, key: str) -> int:
        """Make ``C = operator U`` orthonormal for ``operator``; return the products spent.

        Parameters
        ----------
        operator : sparse matrix, ndarray or LinearOperator
            ``Op``; applied to all of ``U`` at once (one sparse-times-dense product).
        key : str
            Its :func:`operator_key`; when it equals :attr:`key` nothing is recomputed.

        Returns
        -------
        int
            Number of operator applications (0 when reused, else the space's size).
        """
        if self.is_empty or key == self.key:
            return 0
        applications = self.size
        AU = np.asarray(operator @ self.U) if not isinstance(operator, LinearOperator) \
            else operator.matmat(self.U)
        self.MC = self.preconditioner = None
        self._orthonormalise(self.U, AU)
        self.key = key
        return applications

    def store(self, U: np.ndarray, C: np.ndarray, key: str, method: str, MC: np.ndarray | None = None,
              preconditioner=None, preimage: np.ndarray | None = None) -> None:
        """Keep ``U`` with ``C = Op U`` (``C`` is re-orthonormalised here if it is not already).

        Keeps at most ``k`` columns (the first ``k``); a method passes its directions
        best first. ``MC = M C`` for the object ``preconditioner`` may come along, and
        ``preimage`` (``Y`` with ``M Y ~ U``); both are transformed with ``U`` and ``C``.
        """
        for name, extra in (("MC", MC), ("preimage", preimage)):
            if extra is not None and np.shape(extra) != np.shape(C):
                raise SciMLError(f"{name} must have the shape of C, {np.shape(C)}, got {np.shape(extra)}")
        U = np.asarray(U)[:, : self.k]
        C = np.asarray(C)[:, : self.k]
        if U.shape != C.shape or U.ndim != 2:
            raise SciMLError(f"U and C must have one shape n x k, got {U.shape} and {C.shape}")
        if not (np.isfinite(U).all() and np.isfinite(C).all()):
            raise SciMLError(f"{method} produced non-finite recycle directions; the space was not updated")
        self.method = method
        self.MC, self.preconditioner = (None, None) if MC is None else (np.asarray(MC)[:, : self.k], preconditioner)
        self.preimage = None if preimage is None else np.asarray(preimage)[:, : self.k]
        gram = C.conj().T @ C
        if gram.size and np.abs(gram - np.eye(gram.shape[0])).max() <= ORTHONORMAL_TOLERANCE:
            self.U, self.C = np.ascontiguousarray(U), np.ascontiguousarray(C)  # orthonormal already
            if self.preimage is not None:
                self.preimage = np.ascontiguousarray(self.preimage)
        else:
            self._orthonormalise(U, C)
        self.key = key

    def _orthonormalise(self, U: np.ndarray, C: np.ndarray) -> None:
        """Set ``C <- Q``, ``U <- U R^{-1}`` (and ``MC``, ``preimage``) from ``C = Q R``, dropping
        dependent directions.

        A well-conditioned ``C`` (the usual case: the last space's ``C`` was orthonormal
        for a nearby operator) is factorised by CholeskyQR2 (Fujiwara, Fukaya, Nakatsukasa,
        Yamamoto & Yamamoto, ETNA 44, 2015: Cholesky QR applied twice, orthogonal to working
        precision for condition numbers up to about ``eps^-1/2``), ``2 n k^2`` flops in
        matrix products; a pivoted Householder QR, which also finds dependent columns,
        takes over above :data:`CHOLESKY_QR_CONDITION` (measured with ``k = 10``, both
        paths with ``U <- U R^{-1}``: a quarter of the time at ``n = 10^4``, 0.6x at
        ``n = 32^3``).
        """
        factors = self._cholesky_qr(C)
        if factors is not None:
            Q, R = factors
            chosen = slice(None)
        else:
            Q, R, pivots = sla.qr(C, mode="economic", pivoting=True)
            diagonal = np.abs(np.diag(R))
            if diagonal.size == 0 or diagonal[0] == 0.0:
                self.dropped += U.shape[1]
                self.clear()
                return
            keep = int(np.count_nonzero(diagonal > DEPENDENCE_TOLERANCE * diagonal[0]))
            self.dropped += U.shape[1] - keep
            Q, R, chosen = Q[:, :keep], R[:keep, :keep], pivots[:keep]
        self.C = np.ascontiguousarray(Q)
        self.U = self._right_solve(U[:, chosen], R)
        if self.MC is not None:
            self.MC = self._right_solve(self.MC[:, chosen], R)
        if self.preimage is not None:
            self.preimage = self._right_solve(self.preimage[:, chosen], R)

    @classmethod
    def _cholesky_qr(cls, C: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """``(Q, R)`` with ``C = Q R`` by CholeskyQR2, or None when ``C`` is too ill-conditioned."""
        Q, R = C, None
        for _ in range(2):
            gram = Q.conj().T @ Q
            try:
                factor = np.linalg.cholesky((gram + gram.conj().T) / 2).conj().T  # upper: gram = F^H F
            except np.linalg.LinAlgError:
                return None
            if R is None and not (factor.size and np.linalg.cond(factor) < CHOLESKY_QR_CONDITION):
                return None
            Q = cls._right_solve(Q, factor)
            R = factor if R is None else factor @ R
        return Q, R

    @staticmethod
    def _right_solve(X: np.ndarray, R: np.ndarray) -> np.ndarray:
        """``X R^{-1}`` for upper triangular ``R`` (``k x k``), as one product with ``R^{-1}``: a
        matrix product runs at about twice the speed of a triangular solve with ``n x k``
        right-hand sides, with the same ``cond(R) eps`` forward error."""
        inverse = sla.solve_triangular(R, np.eye(R.shape[0], dtype=R.dtype), lower=False, check_finite=False)
        return X @ inverse

    def __repr__(self) -> str:
        return f"RecycleSpace(k={self.k}, size={self.size}, method={self.method!r})"
