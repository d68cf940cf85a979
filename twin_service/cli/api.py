"""``twin-service api``: the decision service over HTTP (twins, KPIs, migration and offloading decisions)."""

from __future__ import annotations

import os
import tempfile
from typing import Annotated

import typer

from twin_service.cli.options import check_key_prefix, check_models, fail, load_settings
from twin_service.cli.root import app


@app.command("api")
def api(
    host: Annotated[
        str | None, typer.Option(help="Interface to listen on (default TWIN_API_HOST or 127.0.0.1).")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Port (default TWIN_API_PORT or 8000).")] = None,
    redis_url: Annotated[
        str | None,
        typer.Option(
            envvar="TWIN_REDIS_URL",
            help="The bridge's Redis: the URL 'twin-service run' prints; with --redis-cluster, any node of the "
            "cluster.",
        ),
    ] = None,
    redis_cluster: Annotated[
        bool,
        typer.Option(
            "--redis-cluster", help="--redis-url names a node of a Redis Cluster (also TWIN_REDIS_CLUSTER=1)."
        ),
    ] = False,
    key_prefix: Annotated[
        str | None,
        typer.Option(
            help="Key prefix the bridge writes under (default TWIN_KEY_PREFIX or twin): the city served when a "
            "request names none (?city= serves any other on the same Redis).",
        ),
    ] = None,
    migration_policy: Annotated[
        str,
        typer.Option(
            envvar="TWIN_MIGRATION_POLICY",
            help="Default migration policy: least-loaded, sticky-nearest, greedy, random, or a model name.",
        ),
    ] = "least-loaded",
    offload_policy: Annotated[
        str,
        typer.Option(
            envvar="TWIN_OFFLOAD_POLICY",
            help="Default offloading policy: nearest-least-loaded, local-only, or a model name.",
        ),
    ] = "nearest-least-loaded",
    predictor: Annotated[
        str,
        typer.Option(
            envvar="TWIN_PREDICTOR",
            help="Workload predictor for the migration observation and mask: persistence, window-mean or a "
            "predictor in models/ (forecasts each server's load from its window in Redis).",
        ),
    ] = "persistence",
    workers: Annotated[
        int,
        typer.Option(
            help="Worker processes, each with its own interpreter, all on one port and one Redis (uvicorn --workers).",
        ),
    ] = 1,
) -> None:
    """Serve twins, KPIs and migration/offloading decisions over HTTP (OpenAPI docs at /docs)."""
    import uvicorn

    from twin_service.api import create_app
    from twin_service.api.metrics import MULTIPROCESS_DIR_VAR
    from twin_service.api.serve import SERVER_OPTIONS
    from twin_service.api.worker import FACTORY, worker_env
    from twin_service.policies import PolicyError

    overrides = {"redis_url": redis_url, "api_host": host, "api_port": port, "redis_cluster": redis_cluster or None}
    settings = load_settings().model_copy(update={k: v for k, v in overrides.items() if v is not None})
    settings = settings.model_copy(update={"key_prefix": check_key_prefix(key_prefix, settings.key_prefix)})
    if not settings.redis_url:
        fail(
            "no Redis to read twins from. Start the bridge ('twin-service run'): it prints "
            "'twins in Redis at URL'; pass that URL with --redis-url (or TWIN_REDIS_URL)"
        )
    from twin_service.twins import check_redis_url

    try:
        check_redis_url(settings.redis_url, cluster=settings.redis_cluster)
    except ValueError as exc:
        fail(f"--redis-url: {exc}")
    check_models(settings, migration_policy, offload_policy, predictor)
    try:
        application = create_app(
            settings, migration_policy=migration_policy, offload_policy=offload_policy, predictor=predictor
        )
    except (PolicyError, ValueError) as exc:
        fail(str(exc))
    typer.echo(
        f"serving http://{settings.api_host}:{settings.api_port} (docs at /docs), twins from "
        f"{settings.redis_url}{' (Redis Cluster)' if settings.redis_cluster else ''} under prefix "
        f"{settings.key_prefix!r}; policies {migration_policy} + {offload_policy}, "
        f"predictor {predictor}" + (f"; {workers} worker processes" if workers > 1 else "")
    )
    if workers == 1:
        uvicorn.run(application, host=settings.api_host, port=settings.api_port, log_level="info", **SERVER_OPTIONS)
        return
    # Each worker builds the app again from the environment (the checks above ran here once); /metrics adds up
    # every worker's counts through prometheus_client's multiprocess files.
    os.environ.update(
        worker_env(settings, migration_policy=migration_policy, offload_policy=offload_policy, predictor=predictor)
    )
    with tempfile.TemporaryDirectory(prefix="twin-metrics-") as metrics_dir:
        os.environ[MULTIPROCESS_DIR_VAR] = metrics_dir
        uvicorn.run(
            FACTORY,
            factory=True,
            workers=workers,
            host=settings.api_host,
            port=settings.api_port,
            log_level="info",
            **SERVER_OPTIONS,
        )
