"""API token authentication: django-rest-knox's, refusing malformed tokens before the database.

Knox stores a SHA-512 digest of each token and looks a token up by its first characters. A header
that is not a well-formed token (non-ASCII or NUL bytes, wrong length) would reach that lookup and
fail there with a server error; here it is a 401 like any unknown token.
"""

from __future__ import annotations

import re

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from knox import auth
from knox.settings import knox_settings
from rest_framework import exceptions


class TokenAuthentication(auth.TokenAuthentication):
    """`Authorization: Token <token>`; request.auth is the knox AuthToken row."""

    def authenticate_credentials(self, token: bytes):
        well_formed = re.compile(
            re.escape(knox_settings.TOKEN_PREFIX.encode())
            + rb"[0-9a-f]{%d}" % knox_settings.AUTH_TOKEN_CHARACTER_LENGTH)
        if not well_formed.fullmatch(token):
            raise exceptions.AuthenticationFailed("Invalid token.")
        return super().authenticate_credentials(token)


class TokenAuthenticationScheme(OpenApiAuthenticationExtension):
    """Documented as before (DRF's tokens were "tokenAuth"), so generated clients keep working."""

    target_class = TokenAuthentication
    name = "tokenAuth"

    def get_security_definition(self, auto_schema):
        return {"type": "apiKey", "in": "header", "name": "Authorization",
                "description": 'A token from POST /api/auth/token/, sent as "Token <token>".'}
