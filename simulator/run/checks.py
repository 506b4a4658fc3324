"""k6-style checks declared in the config, evaluated against a response."""

from __future__ import annotations

from typing import Any

from simulator.config import Check
from simulator.http import Response

_MISSING = object()


def _field(doc: Any, dotted: str) -> Any:
    node = doc
    for part in dotted.split("."):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return _MISSING
    return node


def check_passes(check: Check, resp: Response, doc_cache: list[Any]) -> bool:
    """Whether every clause of ``check`` holds; ``doc_cache`` parses the JSON body once."""
    if check.status and resp.status not in check.status:
        return False
    size = resp.body_size  # the whole body's, kept or not
    if check.body_min_bytes is not None and size < check.body_min_bytes:
        return False
    if check.body_max_bytes is not None and size > check.body_max_bytes:
        return False
    if check.json_has or check.json_equals:
        if not doc_cache:
            try:
                doc_cache.append(resp.json())  # a cut body is no document
            except (ValueError, UnicodeDecodeError):
                doc_cache.append(_MISSING)
        doc = doc_cache[0]
        if doc is _MISSING:
            return False
        if any(_field(doc, f) is _MISSING for f in check.json_has):
            return False
        if any(_field(doc, f) != v for f, v in check.json_equals):
            return False
    return True
