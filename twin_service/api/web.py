"""The pages the service serves itself: the live dashboard and the API docs, with no CDN.

FastAPI's default ``/docs`` loads Swagger UI from a CDN; here its files come from the
``swagger-ui-bundle-v2`` package (Apache-2.0, licence in its dist-info) and ReDoc is off. The
dashboard is plain static files (``static/dashboard``): no build step, nothing vendored.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).parent / "static"
DASHBOARD_DIR = STATIC_DIR / "dashboard"


def swagger_ui_dir() -> Path:
    """Folder of the Swagger UI distribution installed with the ``swagger-ui-bundle-v2`` package."""
    from swagger_ui_bundle import swagger_ui_path  # imported here: importing this module loads nothing

    return Path(str(swagger_ui_path))


def install_web(app: FastAPI, docs_url: str = "/docs") -> None:
    """Mount ``/dashboard/`` and the Swagger UI files, and serve ``docs_url`` from them."""
    app.mount("/dashboard", StaticFiles(directory=DASHBOARD_DIR, html=True), name="dashboard")
    app.mount("/static/swagger-ui", StaticFiles(directory=swagger_ui_dir()), name="swagger-ui")
    oauth2_url = f"{docs_url}/oauth2-redirect"

    @app.get(docs_url, include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} - API docs",
            oauth2_redirect_url=oauth2_url,
            swagger_js_url="/static/swagger-ui/swagger-ui-bundle.js",
            swagger_css_url="/static/swagger-ui/swagger-ui.css",
            swagger_favicon_url="/dashboard/favicon.svg",
        )

    @app.get(oauth2_url, include_in_schema=False)
    def docs_oauth2_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse("/dashboard/")
