"""JSON from clients, with limits: the REST API's parser and the websocket consumers both read
client JSON through `loads`.

- Nesting deeper than MAX_JSON_DEPTH arrays/objects is refused *before* parsing: the text is
  scanned once, linearly (strings blanked out, then a running sum of brackets), so a body of
  20 000 brackets never reaches the recursive decoder (whose RecursionError would be a 500).
  A run config is at most 3 levels deep; a sweep space 4.
- Numbers must be finite: `NaN`, `Infinity`, `-Infinity` and literals beyond the float range
  (`1e400` decodes to inf) are refused, and so are integers too large to become a float
  (10**400 would raise OverflowError wherever it meets float arithmetic).

Every refusal is a `JSONLimitError` (a ValueError) whose message names the problem and is safe
to show the client.
"""

from __future__ import annotations

import json
import math
import re

import numpy as np

MAX_JSON_DEPTH = 32
# Decimal digits of the largest integer accepted (floats end near 1.8e308).
MAX_INTEGER_DIGITS = 308

_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_OPEN, _CLOSE = np.frombuffer(b"[{", np.uint8), np.frombuffer(b"]}", np.uint8)


class JSONLimitError(ValueError):
    """Client JSON beyond a limit; the message says which."""


def depth_message() -> str:
    return f"JSON nested deeper than {MAX_JSON_DEPTH} levels."


def nesting_depth(text: str) -> int:
    """The deepest nesting of arrays and objects in `text` (brackets inside strings do not count).

    Linear and without recursion. Meant for valid JSON; for invalid text the figure only has to
    be an upper bound of what the decoder would descend before it fails, which it is.
    """
    skeleton = np.frombuffer(_STRING.sub("", text).encode("ascii", "ignore"), np.uint8)
    opens, closes = np.isin(skeleton, _OPEN), np.isin(skeleton, _CLOSE)
    steps = opens[opens | closes].astype(np.int32) * 2 - 1  # +1 for an opener, -1 for a closer
    return int(np.cumsum(steps).max()) if steps.size else 0


def _constant(name: str):
    raise JSONLimitError(f"JSON holds the non-finite number {name}; numbers must be finite.")


def _shown(literal: str) -> str:
    return literal if len(literal) <= 40 else f"{literal[:20]}… ({len(literal)} characters)"


def _finite_float(literal: str) -> float:
    value = float(literal)
    if not math.isfinite(value):
        raise JSONLimitError(f"JSON holds the number {_shown(literal)}, which is not finite (beyond the "
                             "range of a float); numbers must be finite.")
    return value


def _float_sized_int(literal: str) -> int:
    if len(literal.lstrip("-")) > MAX_INTEGER_DIGITS:
        raise JSONLimitError(f"JSON holds the integer {_shown(literal)}, which is too large (numbers must "
                             f"stay below 10^{MAX_INTEGER_DIGITS}).")
    return int(literal)


def loads(text: str):
    """`json.loads` within the limits above; JSONLimitError beyond them, ValueError for invalid JSON."""
    if nesting_depth(text) > MAX_JSON_DEPTH:
        raise JSONLimitError(depth_message())
    try:
        return json.loads(text, parse_constant=_constant, parse_float=_finite_float, parse_int=_float_sized_int)
    except RecursionError:  # unreachable after the scan; never let it escape as a server error
        raise JSONLimitError(depth_message()) from None
