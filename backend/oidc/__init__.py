"""Web sign-in: OpenID Connect (authorization code + PKCE) and the browser's session cookie.

api.py         /auth/oidc/login, /auth/oidc/callback, /auth/logout, /api/v1/auth/config
client.py      the provider: discovery, JWKS, token exchange, ID token validation
state.py       the signed, short-lived cookie that binds a login to its browser
sessions.py    web sessions (hashed in SQL, expiring, revocable) and the CSRF rule
service.py     a validated login -> the user (provisioned by email) + session + audit
wiring.py      what the runtime holds for it
"""
