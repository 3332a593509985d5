"""Sign-in errors, with their HTTP status and stable code (see backend.errors).

AppError
 ├── SsoDisabled          404  sso_disabled          OIDC is not configured
 ├── LoginStateInvalid    400  sso_state_invalid     state cookie missing, forged, expired or
 │                                                   not matching the callback's state
 ├── SsoRefused           401  sso_refused           the provider said no (error=...) or the
 │                                                   user may not sign in (disabled, no email)
 ├── IdTokenInvalid       401  sso_token_invalid     signature, iss, aud, exp or nonce wrong
 └── ProviderUnavailable  502  sso_provider_error    discovery, JWKS or token endpoint failed

Each carries ``reason``: a short machine word for the audit event (never shown to
the browser beyond the message).
"""

from __future__ import annotations

from backend.errors import AppError, BadRequest, NotFound, Unauthorized


class SsoDisabled(NotFound):
    code = "sso_disabled"

    def __init__(self) -> None:
        super().__init__("single sign-on is not configured on this server")


class LoginStateInvalid(BadRequest):
    code = "sso_state_invalid"

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class SsoRefused(Unauthorized):
    code = "sso_refused"

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class IdTokenInvalid(Unauthorized):
    code = "sso_token_invalid"

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class ProviderUnavailable(AppError):
    status, code, type = 502, "sso_provider_error", "server_error"

    def __init__(self, message: str, reason: str = "provider_error") -> None:
        super().__init__(message)
        self.reason = reason


SignInError = LoginStateInvalid | SsoRefused | IdTokenInvalid | ProviderUnavailable

# For ``except``: every error that ends a sign-in attempt and is audited as one.
SIGN_IN_ERRORS = (LoginStateInvalid, SsoRefused, IdTokenInvalid, ProviderUnavailable)
