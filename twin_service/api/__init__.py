"""The HTTP API: twins, KPIs and decisions over FastAPI (``create_app``), one router per resource."""

from twin_service.api.app import create_app

__all__ = ["create_app"]
