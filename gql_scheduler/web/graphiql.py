"""GraphiQL served from the package, under a Content-Security-Policy that allows nothing external.

The page at GET /graphql and every file it loads come from this server: GraphiQL, React
and the graphql-ws client are vendored in static/graphiql/ (see manifest.json and
.ci/vendor_graphiql.py), and the page's own script is a served file, never inline, so
that the policy needs no 'unsafe-inline' for scripts. Asset URLs carry a digest of the
file, which lets browsers cache them for a year and still see a new version at once.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.responses import FileResponse, HTMLResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

STATIC = Path(__file__).resolve().parent / "static" / "graphiql"
MANIFEST = STATIC / "manifest.json"
# Where the files are served, and how the page names them: relative to the page at
# .../graphql, so that the page also works under a path prefix (a proxy's root path).
ASSETS_PATH = "/graphql/assets"
ASSETS_FROM_PAGE = "graphql/assets"
# In the order the page needs them: React before GraphiQL, everything before setup.js.
STYLESHEETS = ("graphiql.min.css", "page.css")
SCRIPTS = (
    "react.production.min.js",
    "react-dom.production.min.js",
    "graphql-ws.min.js",
    "graphiql.min.js",
    "setup.js",
)
# Files of ours, beside the vendored ones that the manifest lists.
OWN_FILES = ("page.css", "setup.js")

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        # GraphiQL's dialogs (Radix, through react-remove-scroll) add a <style> element whose
        # text depends on the scrollbar's width, so no hash can allow it. Styles run no code.
        "style-src 'self' 'unsafe-inline'",
        # GraphiQL's stylesheet carries its fonts inline as data: URLs: nothing is fetched.
        "font-src 'self' data:",
        "img-src 'self'",
        # 'self' covers ws:// and wss:// to this host too (CSP Level 3, as Chromium does).
        "connect-src 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
        "form-action 'none'",
    ]
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
# The page changes with each release and must be fetched again; the assets never change
# under their URL (it names their digest).
PAGE_CACHE = "no-cache"
ASSET_CACHE = "public, max-age=31536000, immutable"
MEDIA_TYPES = {".js": "text/javascript", ".css": "text/css", ".json": "application/json"}


@dataclass(frozen=True)
class VendoredFile:
    name: str
    package: str
    version: str
    sha256: str


def vendored_files() -> list[VendoredFile]:
    """Every vendored file as manifest.json lists it."""
    manifest: dict[str, Any] = json.loads(MANIFEST.read_text(encoding="utf-8"))
    return [
        VendoredFile(name, package["name"], package["version"], entry["sha256"])
        for package in manifest["packages"]
        for name, entry in package["files"].items()
    ]


def _digests() -> dict[str, str]:
    digests = {file.name: file.sha256 for file in vendored_files()}
    for name in OWN_FILES:  # small: hashed when the app is built
        digests[name] = hashlib.sha256((STATIC / name).read_bytes()).hexdigest()
    return digests


def render_page(digests: dict[str, str]) -> str:
    def url(name: str) -> str:
        return f"{ASSETS_FROM_PAGE}/{name}?v={digests[name][:16]}"

    styles = "".join(f'  <link rel="stylesheet" href="{url(name)}">\n' for name in STYLESHEETS)
    scripts = "".join(f'  <script src="{url(name)}"></script>\n' for name in SCRIPTS)
    return (
        "<!doctype html>\n"
        '<html lang="en">\n<head>\n  <meta charset="utf-8">\n'
        "  <title>gql-scheduler · GraphiQL</title>\n"
        f"{styles}</head>\n<body>\n"
        '  <div id="graphiql">Loading…</div>\n'
        f"{scripts}</body>\n</html>\n"
    )


class GraphiQLAssets(StaticFiles):
    """The files of static/graphiql/, with the page's security headers and a long cache."""

    def __init__(self) -> None:
        super().__init__(directory=STATIC)

    def file_response(
        self,
        full_path: str | os.PathLike[str],
        stat_result: os.stat_result,
        scope: Scope,
        status_code: int = 200,
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        media_type = MEDIA_TYPES.get(Path(full_path).suffix)
        if isinstance(response, FileResponse) and media_type is not None:
            # Not left to the mimetypes table, which differs between systems: with
            # nosniff, a script served under another type does not run.
            response.headers["content-type"] = f"{media_type}; charset=utf-8"
        response.headers.update(SECURITY_HEADERS)
        response.headers["Cache-Control"] = ASSET_CACHE
        return response


class GraphiQLPage:
    """The page, rendered once when the app is built."""

    def __init__(self) -> None:
        self.html = render_page(_digests())

    def response(self) -> HTMLResponse:
        return HTMLResponse(self.html, headers={**SECURITY_HEADERS, "Cache-Control": PAGE_CACHE})
