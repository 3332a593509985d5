"""Serve the built SPA (frontend/dist) for every GET that no API route matched.

It is installed as the router's *default* handler rather than as a catch-all route, so
it can never shadow a route, whatever order routers are included in. Paths under the
API prefixes keep the framework's JSON 404. Files from the build are served as they
are; any other path gets index.html, so client-side routes (``/c/<id>``, ``/console``)
survive a reload. With no build, ``/`` explains how to make one.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

# Never answered with the SPA: an unknown path here is an API error, not a page.
API_PREFIXES = ("/v1", "/api", "/auth", "/slack", "/healthz", "/readyz", "/metrics")

# Defence in depth behind the renderer's own escaping: no inline or foreign script, no
# plugins, no framing, and the page talks only to its own origin.
SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
        "frame-ancestors 'none'; form-action 'self'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
}

MISSING_BUILD = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>expertgate: web UI not built</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body style="font-family: system-ui, sans-serif; max-width: 40rem; margin: 3rem auto">
<h1>The web UI is not built</h1>
<p>The API is running (<a href="/docs">/docs</a>, OpenAI-compatible at <code>/v1</code>),
but no built frontend was found at <code>{dist}</code>.</p>
<p>Build it with <code>make setup</code> (or <code>cd frontend &amp;&amp; npm ci &amp;&amp;
npm run build</code>), then reload this page. <code>make run</code> does this for you.</p>
</body></html>
"""


class SpaFallback:
    """ASGI app for requests no route matched; ``fallback`` answers the rest (404)."""

    def __init__(self, dist: Path, fallback: ASGIApp) -> None:
        self.dist = dist.resolve()
        self.fallback = fallback

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "/")
        if (
            scope["type"] != "http"
            or scope["method"] not in ("GET", "HEAD")
            or any(path == p or path.startswith(p + "/") for p in API_PREFIXES)
        ):
            await self.fallback(scope, receive, send)
            return
        response = self._response(Request(scope).url.path)
        await response(scope, receive, send)

    def _response(self, path: str) -> Response:
        index = self.dist / "index.html"
        if not index.is_file():
            return HTMLResponse(
                MISSING_BUILD.format(dist=self.dist), status_code=503, headers=SECURITY_HEADERS
            )
        asset = self._file(path)
        if asset is not None:
            # Vite puts content-hashed names under assets/: those never change.
            cache = (
                "public, max-age=31536000, immutable"
                if asset.parent.name == "assets"
                else "no-cache"
            )
            return FileResponse(asset, headers={**SECURITY_HEADERS, "cache-control": cache})
        if Path(path).suffix and not path.endswith(".html"):
            # A missing file (say an old asset): a 404, not the page as a script.
            return Response("not found", status_code=404, media_type="text/plain")
        return FileResponse(index, headers={**SECURITY_HEADERS, "cache-control": "no-cache"})

    def _file(self, path: str) -> Path | None:
        relative = path.lstrip("/")
        if not relative:
            return None
        candidate = (self.dist / relative).resolve()
        if not candidate.is_relative_to(self.dist) or not candidate.is_file():
            return None
        return candidate


def install_spa(app: FastAPI, dist: Path) -> None:
    """Answer otherwise unmatched GETs from ``dist`` (index.html for client routes)."""
    app.router.default = SpaFallback(dist, app.router.default)
