"""The built SPA served at / without shadowing any API path."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from backend.app import create_app
from backend.settings import Settings

INDEX = "<!doctype html><title>expertgate</title><div id=root></div>"


def app_client(web_dir: Path, tmp_path: Path) -> httpx.AsyncClient:
    # No lifespan runs under ASGITransport: routes that need no runtime work as-is.
    app = create_app(Settings(data_dir=tmp_path / "data", web_dir=web_dir, bootstrap_admin=False))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


@pytest.fixture
async def web(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    dist = tmp_path / "dist"
    (dist / "assets").mkdir(parents=True)
    (dist / "index.html").write_text(INDEX)
    (dist / "assets" / "index-abc123.js").write_text("console.log('app')")
    (dist / "favicon.svg").write_text("<svg xmlns='http://www.w3.org/2000/svg'/>")
    (tmp_path / "secret.txt").write_text("outside the build")
    async with app_client(dist, tmp_path) as client:
        yield client


async def test_root_and_client_routes_get_index_with_security_headers(
    web: httpx.AsyncClient,
) -> None:
    for path in ("/", "/c/0b7c9a", "/console/audit"):
        r = await web.get(path)
        assert r.status_code == 200, path
        assert r.text == INDEX
        assert r.headers["content-type"].startswith("text/html")
        assert "script-src 'self'" in r.headers["content-security-policy"]
        assert r.headers["cache-control"] == "no-cache"


async def test_build_files_are_served_hashed_assets_cached_forever(
    web: httpx.AsyncClient,
) -> None:
    r = await web.get("/assets/index-abc123.js")
    assert r.status_code == 200
    assert r.text == "console.log('app')"
    assert "immutable" in r.headers["cache-control"]
    r = await web.get("/favicon.svg")
    assert r.status_code == 200 and r.headers["cache-control"] == "no-cache"
    # A missing asset is a 404, not index.html served as a script.
    r = await web.get("/assets/index-old.js")
    assert r.status_code == 404
    assert "<title>" not in r.text


async def test_api_paths_keep_their_json_errors(web: httpx.AsyncClient) -> None:
    for path in ("/v1/nothing", "/api/v1/nothing", "/api", "/slack/events"):
        r = await web.get(path)
        assert r.status_code == 404, path
        assert r.headers["content-type"].startswith("application/json"), path
    # /metrics is a real route now (Prometheus text; 503 before the runtime exists).
    r = await web.get("/metrics")
    assert r.status_code in (200, 503) and "<title>" not in r.text
    r = await web.get("/healthz")
    assert r.json() == {"status": "ok"}
    r = await web.post("/c/abc", json={})
    assert r.status_code == 404
    assert not r.headers["content-type"].startswith("text/html")


async def test_no_path_escapes_the_build_directory(web: httpx.AsyncClient) -> None:
    for path in ("/../secret.txt", "/%2e%2e/secret.txt", "/assets/..%2f..%2fsecret.txt"):
        r = await web.get(path)
        assert "outside the build" not in r.text, path


async def test_missing_build_explains_how_to_make_it(tmp_path: Path) -> None:
    async with app_client(tmp_path / "nowhere", tmp_path) as client:
        r = await client.get("/")
        assert r.status_code == 503
        assert "make setup" in r.text and "npm run build" in r.text
        assert (await client.get("/healthz")).status_code == 200
