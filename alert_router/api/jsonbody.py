r"""Parse a JSON request body from outside (Telegram updates, Slack payloads, API bodies) without surprises.

* The bytes are JSON text, so UTF-8 (RFC 8259): a ``charset`` parameter of the request is not consulted
  (``charset=x-bogus`` must not become a ``LookupError``), and bytes that are not UTF-8 are refused.
* Nesting deeper than :data:`MAX_DEPTH` is refused: no Slack, Telegram or API body comes close, and
  anything that walks a deeper document recursively (validation, ``json.dumps`` in the audit log)
  would hit Python's recursion limit.
* Lone surrogates (an escaped ``\ud800`` alone: valid JSON, but not Unicode) are replaced by U+FFFD, so every
  string can be encoded as UTF-8 where it is stored, hashed into the audit chain or sent on.

Every refusal is a :class:`BadJSON`, a ``ValueError`` whose message suits a 400 answer.
"""

from __future__ import annotations

import json
import re
from typing import Any

MAX_DEPTH = 64
"""The deepest nesting of arrays and objects accepted."""

_SURROGATE = re.compile("[\ud800-\udfff]")


class BadJSON(ValueError):
    """The body is not acceptable JSON; the message says why."""


def parse_json(raw: bytes | str, *, max_depth: int = MAX_DEPTH) -> Any:
    """Decode ``raw`` as described in the module docstring; raise :class:`BadJSON` when it is not acceptable."""
    if isinstance(raw, bytes | bytearray):
        try:
            text = bytes(raw).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise BadJSON(f"the body is not UTF-8 (byte {exc.start})") from None
    else:
        text = raw
    try:
        value = json.loads(text)
    except RecursionError:
        raise BadJSON(f"JSON nested deeper than {max_depth} levels") from None
    except ValueError as exc:
        raise BadJSON(f"not valid JSON: {exc}") from None
    return _checked(value, max_depth)


def _clean(text: str) -> str:
    return text if text.isascii() else _SURROGATE.sub("\ufffd", text)


def _checked(root: Any, max_depth: int) -> Any:
    """``root`` with lone surrogates replaced; :class:`BadJSON` when nested deeper than ``max_depth``.

    Iterative, so a deep document cannot exhaust the stack here either.
    """
    if isinstance(root, str):
        return _clean(root)
    if not isinstance(root, dict | list):
        return root
    stack: list[tuple[dict[str, Any] | list[Any], int]] = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > max_depth:
            raise BadJSON(f"JSON nested deeper than {max_depth} levels")
        if isinstance(node, dict):
            for key in list(node):
                value = node[key]
                clean_key = _clean(key)
                if clean_key != key:
                    del node[key]
                    node[clean_key] = value
                if isinstance(value, str):
                    node[clean_key] = _clean(value)
                elif isinstance(value, dict | list):
                    stack.append((value, depth + 1))
        else:
            for i, value in enumerate(node):
                if isinstance(value, str):
                    node[i] = _clean(value)
                elif isinstance(value, dict | list):
                    stack.append((value, depth + 1))
    return root
