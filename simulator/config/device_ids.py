"""Which senders of ``X-Sequence`` may present the same ``X-Device-ID`` in one run.

The reference server de-duplicates uploads on (device, sequence) after stripping the ID's
surrounding whitespace, and every sender numbers its uploads from sequence 0: two senders
(two devices of one scenario, two scenarios, a scenario and a board) that present one ID have
one's uploads answered as the other's retries, 200 and stored once. A scenario's IDs are
``id_pattern`` rendered for n = ``id_start`` .. ``id_start + devices - 1`` — a finite set, so a
clash is decided exactly: same plain pattern, by interval overlap; otherwise by rendering one
side and parsing each ID back with the other's pattern (a plain one) or looking it up in the
other's rendered set. Linear in the devices; nothing rendered for two plain patterns whose
literal text cannot meet.
"""

from __future__ import annotations

import bisect
import re
import string
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property

#: a field ``{n:SPEC}`` whose rendering is digits only and a different text for every n >= 0
_PLAIN_SPEC = re.compile(r"(?:0\d*)?[,_]?([dxXob]?)")
_BASES = {"": 10, "d": 10, "x": 16, "X": 16, "o": 8, "b": 2}


def rendered(pattern: str, n: int) -> str:
    """Device n's ID as the server keys it (surrounding whitespace stripped)."""
    return pattern.format(n=n).strip()


@dataclass(frozen=True)
class IdRange:
    """One sender's IDs: ``pattern`` for n in ``first`` .. ``last``."""

    owner: str  # scenario name
    pattern: str
    first: int
    last: int

    @cached_property
    def _shape(self) -> tuple[str, str, int | None, str]:
        """(literal before the field, literal after, base when plain else None, separator)."""
        parts = list(string.Formatter().parse(self.pattern))
        fields = [(spec, conv) for _, name, spec, conv in parts if name is not None]
        lit = [text for text, *_ in parts]
        if not fields:
            return self.pattern, self.pattern, None, ""
        first_field = next(i for i, p in enumerate(parts) if p[1] is not None)
        last_field = max(i for i, p in enumerate(parts) if p[1] is not None)
        before = "".join(lit[: first_field + 1])
        after = "".join(lit[last_field + 1 :])
        spec, conv = fields[0]
        m = _PLAIN_SPEC.fullmatch(spec or "")
        if len(fields) != 1 or parts[first_field][1] != "n" or conv or m is None:
            return before, after, None, ""
        sep = "," if "," in (spec or "") else "_" if "_" in (spec or "") else ""
        return before, after, _BASES[m.group(1)], sep

    @property
    def plain(self) -> bool:
        """Every n renders a different ID (digits between fixed text)."""
        return self._shape[2] is not None

    def lengths(self) -> tuple[int, int]:
        """The shortest and longest of its IDs (first's and last's, for a plain pattern)."""
        return len(rendered(self.pattern, self.first)), len(rendered(self.pattern, self.last))

    def within(self, shortest: int, longest: int) -> IdRange:
        """The part of a plain range whose IDs are ``shortest`` .. ``longest`` long (a plain
        ID's length never falls as n grows); empty as first > last."""

        def lo(length: int) -> int:  # the first n whose ID is at least ``length`` long
            return (
                bisect.bisect_left(
                    range(self.first, self.last + 1),
                    length,
                    key=lambda n: len(rendered(self.pattern, n)),
                )
                + self.first
            )

        return IdRange(self.owner, self.pattern, lo(shortest), lo(longest + 1) - 1)

    def ids(self) -> Iterator[tuple[int, str]]:
        for n in range(self.first, self.last + 1):
            yield n, rendered(self.pattern, n)

    def parse(self, dev_id: str) -> int | None:
        """The n in range whose ID is ``dev_id`` (a plain pattern), else None."""
        before, after, base, sep = self._shape
        pre, suf = before.lstrip(), after.rstrip()
        if base is None or len(dev_id) <= len(pre) + len(suf):
            return None
        if not dev_id.startswith(pre) or not dev_id.endswith(suf):
            return None
        digits = dev_id[len(pre) : len(dev_id) - len(suf)]
        try:
            n = int(digits.replace(sep, "") if sep else digits, base)
        except ValueError:
            return None
        ok = self.first <= n <= self.last and rendered(self.pattern, n) == dev_id
        return n if ok else None

    def may_meet(self, other: IdRange) -> bool:
        """False when the literal text around the fields rules out any common ID."""
        a0, a1, *_ = self._shape
        b0, b1, *_ = other._shape
        a0, b0, a1, b1 = a0.lstrip(), b0.lstrip(), a1.rstrip(), b1.rstrip()
        return (a0.startswith(b0) or b0.startswith(a0)) and (a1.endswith(b1) or b1.endswith(a1))

    def own_clash(self) -> tuple[int, int, str] | None:
        """Two of its devices (n, m) that render the same ID, if any."""
        if self.plain or self.first == self.last:
            return None
        seen: dict[str, int] = {}
        for n, dev_id in self.ids():
            m = seen.setdefault(dev_id, n)
            if m != n:
                return m, n, dev_id
        return None

    def finder(self) -> Finder:
        """Looks IDs up in this range: parsing when plain, else in the rendered set."""
        return Finder(self)


class Finder:
    """``n`` of an ID within one range (its rendered set is built once, when not plain)."""

    def __init__(self, r: IdRange) -> None:
        self.range = r
        self._set: dict[str, int] | None = None if r.plain else {i: n for n, i in r.ids()}

    def find(self, dev_id: str) -> int | None:
        if self._set is None:
            return self.range.parse(dev_id)
        return self._set.get(dev_id)


def clash(a: IdRange, b: IdRange) -> tuple[int, int, str] | None:
    """(n in a, n in b, the ID) for an ID both present, or None. Same plain pattern: by the
    ranges' overlap; else the smaller side is rendered and looked up in the other."""
    if a.pattern == b.pattern and a.plain:
        lo = max(a.first, b.first)
        return (lo, lo, rendered(a.pattern, lo)) if lo <= min(a.last, b.last) else None
    if not a.may_meet(b):
        return None
    if a.plain != b.plain or a.plain:  # render one side, parse it back with a plain other
        swap = not b.plain or (a.plain and b.last - b.first < a.last - a.first)
    else:  # neither plain: the smaller one's rendered set, the bigger one streamed past it
        swap = a.last - a.first < b.last - b.first
    walk, look = (b, a.finder()) if swap else (a, b.finder())
    if walk.plain and look.range.plain:  # only IDs as long as the other's can be among them
        walk = walk.within(*look.range.lengths())
    for n, dev_id in walk.ids():
        m = look.find(dev_id)
        if m is not None:
            return (m, n, dev_id) if swap else (n, m, dev_id)
    return None


__all__ = ["Finder", "IdRange", "clash", "rendered"]
