"""The Starlette application: configuration, lifespan and routes, nothing else.

``create_app`` is the factory uvicorn and the tests call. The lifespan owns the database:
it opens the engine, upgrades the embedded database (nobody else would), and disposes the
engine on shutdown. While the database cannot be reached, every route that needs it answers
503 with ``Retry-After`` (``backend.api.errors``), and serves again as soon as it is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route, WebSocketRoute
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL

from backend import playground
from backend.api import auth
from backend.api.compiled import CompiledReads
from backend.api.compiled_states import CompiledStates
from backend.api.context import Context
from backend.api.endpoint import Checkpoint, Compiled, GraphQLEndpoint
from backend.api.errors import RETRY_AFTER_SECONDS, answers_unavailable, unavailable_response
from backend.api.limits import Limits
from backend.api.schema import schema
from backend.api.websocket import TransportWSHandler
from backend.database import migrate
from backend.database.engine import Database, DatabaseUnavailable
from backend.events import EventHub
from backend.services import run_forever
from backend.settings import Settings

logger = logging.getLogger("runview.server")


class _GraphQL(GraphQL[Context, None]):
    # graphql-transport-ws only: the legacy graphql-ws protocol would skip the checkpoint.
    graphql_transport_ws_handler_class = TransportWSHandler

    def __init__(self, keys: auth.KeyCache, auth_required: bool, max_subscriptions: int) -> None:
        super().__init__(
            schema,
            graphql_ide="graphiql",
            subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
            max_subscriptions_per_connection=max_subscriptions,
        )
        self.keys = keys
        self.auth_required = auth_required
        self.checkpoint = Checkpoint(schema._schema)  # shared with the HTTP endpoint

    async def get_context(self, request: Any, response: Any = None) -> Context:
        access = getattr(request.state, "access", None)
        return Context(db=request.app.state.db, request=request, access=access)

    async def on_ws_connect(self, context: Context) -> Any:
        if self.auth_required:
            access = await auth.authenticate_ws(self.keys, context.db, context.connection_params)
            if access is None:
                raise ConnectionRejectionError({"message": "A live API key is needed."})
            context.access = access
        return await super().on_ws_connect(context)

    async def render_graphql_ide(self, request: Request) -> Response:
        # Strawberry's page loads GraphiQL from a CDN; runview's serves its own copy.
        return await playground.page(request)

    def create_response(self, response_data: Any, sub_response: Response) -> Response:
        # An outage is the whole answer: partial data would read as a verdict on the request.
        if answers_unavailable(response_data):
            return unavailable_response()
        status = auth.status_of(response_data)
        if status is not None:
            sub_response.status_code = status
        return super().create_response(response_data, sub_response)


async def _unavailable(request: Request, error: Exception) -> Response:
    logger.warning("answering 503 to %s: %s", request.url.path, error)
    return unavailable_response()


async def health(request: Request) -> Response:
    db: Database = request.app.state.db
    try:
        await db.ping()
    except Exception as error:  # the point of /health is to report this, not raise it
        logger.warning("health check failed: %s", error)
        return JSONResponse(
            {"status": "unavailable", "database": db.dialect},
            status_code=503,
            headers={"retry-after": str(RETRY_AFTER_SECONDS)},
        )
    return JSONResponse({"status": "ok", "database": db.dialect})


async def home(request: Request) -> Response:
    return RedirectResponse("/graphql")


async def _check_revision(db: Database) -> None:
    """Refuse to serve a database the migrations have not reached: every query would fail."""
    try:
        revision = await migrate.current(db.engine)
    except Exception as error:  # unreachable now; /health says so until it is back
        logger.warning("cannot reach the database to check its revision: %s", error)
        return
    if revision != migrate.head():
        raise RuntimeError(
            f"the database is at revision {revision!r} but this server needs"
            f" {migrate.head()!r}; run `runview db upgrade --database-url ...` first."
        )


def create_app(settings: Settings | None = None) -> Starlette:
    """Build the server for ``settings`` (default: from ``RUNVIEW_*`` environment variables)."""
    settings = settings or Settings()
    limits = Limits.from_settings(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        db = Database(settings.resolved_database_url, settings.statement_timeout_seconds or None)
        events = EventHub(
            db,
            buffer=settings.subscription_buffer,
            poll_seconds=settings.events_poll_seconds,
        )
        services: asyncio.Task[None] | None = None
        try:
            if settings.should_upgrade_on_start:
                await migrate.upgrade(db.engine)
            else:
                await _check_revision(db)
            app.state.db = db
            app.state.limits = limits
            app.state.events = events
            if settings.run_services:
                services = asyncio.create_task(run_forever(db, settings), name="services")
            yield
        finally:
            if services is not None:
                services.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await services
            await events.stop()
            await db.dispose()

    keys = auth.KeyCache(settings.auth_cache_seconds)
    graphql = _GraphQL(keys, settings.auth_required, settings.max_subscriptions_per_connection)
    compiled: list[Compiled] = []
    if settings.compiled_reads:
        compiled.append(CompiledReads(schema._schema, limits=limits))
    if settings.compiled_states:
        compiled.append(CompiledStates(schema._schema, limits=limits))
    return Starlette(
        routes=[
            Route("/", home),
            Route("/health", health),
            Route(
                "/graphql",
                GraphQLEndpoint(graphql, compiled, checkpoint=graphql.checkpoint),
                methods=["GET", "POST"],
            ),
            WebSocketRoute("/graphql", graphql),
            Route(f"{playground.PREFIX}/{{path:path}}", playground.Assets()),
        ],
        middleware=[
            Middleware(
                auth.Gate, settings=settings, keys=keys, public_prefixes=(playground.PREFIX,)
            )
        ],
        lifespan=lifespan,
        # Routes that let the outage through (the GraphQL view answers its own errors).
        exception_handlers={DatabaseUnavailable: _unavailable},
    )
