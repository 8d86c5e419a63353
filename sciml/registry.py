"""A name -> object registry shared by problems, solvers, preconditioners, models and
benchmark suites.

Examples
--------
>>> from sciml.registry import Registry
>>> shapes = Registry("shape")
>>> @shapes.register("square")
... def square(n):
...     return n * n
>>> shapes.get("square")(3)
9
>>> shapes.names()
['square']
"""

from __future__ import annotations

from typing import Any, Callable, Generic, TypeVar

from sciml.errors import UnknownNameError

T = TypeVar("T")


class Registry(Generic[T]):
    """Objects registered under unique lower-case names.

    Parameters
    ----------
    kind : str
        What the registry holds ("model", "solver", ...), used in error messages.
    """

    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str, obj: T | None = None) -> Any:
        """Register ``obj`` under ``name``; used bare as a decorator when ``obj`` is None."""
        key = name.lower()

        def add(item: T) -> T:
            if key in self._items and self._items[key] is not item:
                raise ValueError(f"{self.kind} name {key!r} is already registered")
            self._items[key] = item
            return item

        return add if obj is None else add(obj)

    def get(self, name: str) -> T:
        """The object registered under ``name``; an :class:`UnknownNameError` lists the valid names."""
        key = str(name).lower()
        if key not in self._items:
            raise UnknownNameError(
                f"unknown {self.kind} {name!r}; choose one of: {', '.join(self.names())}"
            )
        return self._items[key]

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return str(name).lower() in self._items

    def items(self) -> list[tuple[str, T]]:
        return sorted(self._items.items())


def parse_spec(spec: str | tuple | list | dict | None) -> tuple[str | None, dict]:
    """Split a method spec into ``(name, kwargs)``.

    A spec is a name, ``(name, kwargs)`` as pyamg writes ``('jacobi', {'omega': 4/3})``,
    or a mapping ``{"name": ..., **kwargs}`` as it comes from a config file.

    >>> parse_spec(("ilu", {"drop_tol": 1e-4}))
    ('ilu', {'drop_tol': 0.0001})
    >>> parse_spec({"name": "amg", "strength": "symmetric"})
    ('amg', {'strength': 'symmetric'})
    """
    if spec is None:
        return None, {}
    if isinstance(spec, str):
        return spec, {}
    if isinstance(spec, dict):
        kwargs = dict(spec)
        name = kwargs.pop("name", None)
        if name is None:
            raise UnknownNameError(f"method spec {spec!r} has no 'name' key; add name = \"...\"")
        return name, kwargs
    if isinstance(spec, (tuple, list)) and len(spec) == 2 and isinstance(spec[1], dict):
        return spec[0], dict(spec[1])
    raise UnknownNameError(f"cannot read method spec {spec!r}; give a name or (name, kwargs)")


Factory = Callable[..., Any]
