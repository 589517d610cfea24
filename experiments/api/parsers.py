"""The API's JSON parser: DRF's, with the limits of tuner_site.json_limits (nesting depth, finite
numbers). The default of every view (settings REST_FRAMEWORK DEFAULT_PARSER_CLASSES), and what
views that accept JSON only name in `parser_classes`.

A refused body is a 400 {"detail": message}, e.g. {"detail": "JSON nested deeper than 32 levels."}.
"""

from __future__ import annotations

from rest_framework import parsers
from rest_framework.exceptions import ParseError

from tuner_site.json_limits import JSONLimitError, loads


class LimitedJSONParser(parsers.JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        encoding = parsers.get_encoding(parser_context or {})
        try:
            return loads(stream.read().decode(encoding))
        except JSONLimitError as exc:
            raise ParseError(str(exc)) from None
        except ValueError as exc:  # undecodable bytes, invalid JSON
            raise ParseError(f"JSON parse error - {exc}") from None
