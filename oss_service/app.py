"""The OSS web application (Starlette): the routes, and the one way every answer is finished.

The handlers are in :mod:`.handlers`, the settings in :mod:`.settings`, the
headers, metrics and access log every answer gets in :mod:`.access`.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import AsyncIterator, Awaitable, Callable

from starlette.applications import Starlette
from starlette.requests import ClientDisconnect
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from .access import Exchange
from .handlers import VERSION, OssApp
from .logs import configure_logging_from_env, flush_logs
from .replies import INTERNAL_ERROR, Reply
from .service import OssStore
from .settings import ServerSettings
from .storage import open_oss_database

__all__ = ["VERSION", "OssStarlette", "ServerSettings", "app_from_env", "create_app", "set_aside_what_loading_made"]

HotHandler = Callable[[Scope, Receive], Awaitable[Reply]]


class OssStarlette(Starlette):
    """The OSS's Starlette application, with the two hot endpoints answered ahead of its stack.

    ``POST /api/v1/updates`` and ``GET /api/v1/lookup`` go straight to their
    handlers; every other request, and these paths with another method (405),
    take Starlette's router. Both ways send through one :class:`Exchange`, which
    adds the headers, counts the request and writes its log line.
    """

    oss: OssApp
    hot: dict[tuple[str, str], HotHandler]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        exchange = Exchange(scope, self.oss.metrics)
        send = exchange.wrap(send)
        try:
            path = scope["path"]
            root = scope.get("root_path")
            if root and path.startswith(root):
                path = path[len(root):]
            handler = self.hot.get((scope["method"], path))
            if handler is None:
                await super().__call__(scope, receive, send)
            else:
                scope["app"] = self
                reply = await handler(scope, receive)
                exchange.merchant = reply.merchant
                await reply.send(send)
        except ClientDisconnect:
            exchange.status = 499  # the client went away before its request was read: nobody to answer
        except Exception:
            if not exchange.started:
                with contextlib.suppress(Exception):
                    await INTERNAL_ERROR.send(send)
            exchange.status = 500
            raise  # on to the server's log
        finally:
            exchange.done()


class _Endpoint:
    """A hot handler as a Starlette route endpoint (reached only when a root path hides the fast way)."""

    def __init__(self, handler: HotHandler) -> None:
        self.handler = handler

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        reply = await self.handler(scope, receive)
        scope.setdefault("state", {})["merchant"] = reply.merchant
        await reply.send(send)


def create_app(store: OssStore | None = None, settings: ServerSettings | None = None,
               *, on_close: Callable[[], None] | None = None) -> Starlette:
    """The OSS application on ``store`` (or on ``settings.db_url``, migrated)."""
    settings = settings or ServerSettings()
    if store is None:
        store = OssStore(open_oss_database(settings.db_url))
    oss = OssApp(store, settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await oss.aclose()
        if on_close is not None:
            on_close()
        flush_logs()

    app = OssStarlette(routes=[
        Route("/", oss.root),
        Route("/api/v1/updates", _Endpoint(oss.post_update), methods=["POST"]),
        Route("/api/v1/lookup", _Endpoint(oss.api_lookup), methods=["GET"]),
        Route("/api/v1/account", oss.get_account, methods=["GET"]),
        Route("/api/v1/orders/{order_number}", oss.get_order, methods=["GET"]),
        Route("/status/{merchant}", oss.status_page, methods=["GET", "POST"]),
        Route("/status/{merchant}/snippet", oss.status_snippet, methods=["GET"]),
        Route("/status/{merchant}/look.css", oss.status_look, methods=["GET"]),
        Route("/healthz", oss.healthz, methods=["GET"]),
        Route("/metrics", oss.metrics_endpoint, methods=["GET"]),
        Route("/openapi.json", oss.openapi, methods=["GET"]),
        Route("/static/oss.css", oss.css, methods=["GET"]),
    ], lifespan=lifespan)
    app.oss = oss
    app.hot = {("POST", "/api/v1/updates"): oss.post_update, ("GET", "/api/v1/lookup"): oss.api_lookup}
    app.state.oss = oss
    return app


def app_from_env() -> Starlette:
    """The factory ``serve --workers N`` gives uvicorn: settings come from the environment."""
    configure_logging_from_env()
    settings = ServerSettings.from_env()
    engine = open_oss_database(settings.db_url, run_migrations=False)
    app = create_app(OssStore(engine), settings, on_close=engine.dispose)
    set_aside_what_loading_made()
    return app


def set_aside_what_loading_made() -> None:
    """In a server process, once its application is loaded: what loading made (the libraries' modules, the
    routes, the schemas) is set aside from garbage collection (``gc.freeze``).

    A full collection then looks only at what serving made since. Measured under
    load (bench/oss.py's server): one took 71-84 ms over the ~92,000 loaded
    objects, a pause of every request in flight; the longest group commit went
    from 75-118 ms to 12-17 ms.
    """
    gc.collect()  # what is garbage already is not kept for good
    gc.freeze()
