"""API schemas for /api/v1/auth/config."""

from __future__ import annotations

from pydantic import BaseModel, Field


class AuthConfigOut(BaseModel):
    oidc_enabled: bool = Field(description="Whether 'Sign in with SSO' is offered.")
    login_url: str | None = Field(description="Where the browser goes to sign in with SSO.")
    logout_url: str = Field(description="POST here to end the cookie session.")
    csrf_header: str = Field(description="Header every unsafe cookie-authenticated request must send ...")
    csrf_value: str = Field(description="... with this value.")
