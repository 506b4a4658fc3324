"""A string wrapper that keeps passwords and Wi-Fi keys out of logs, reports and errors."""

from __future__ import annotations


class Secret:
    """Holds a secret value; every textual rendering is masked.

    The value is only reachable through :meth:`reveal`, so a secret that ends up in an f-string,
    a ``repr`` of a config dataclass or a JSON dump shows ``'***'`` instead of the value.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    def __str__(self) -> str:
        return "***"

    def __format__(self, spec: str) -> str:
        return "***"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))

    def __bool__(self) -> bool:
        return bool(self._value)
