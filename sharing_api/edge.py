"""The single-person lookups answered at the app's edge: the busiest path, without Starlette's layers.

A lookup whose route has its own parser (`direct` in sharing_api/router.py) is matched by the app
itself, before Starlette's middleware stack, and its route handler is called with the request: no
error middleware, exception middleware, router loop or `request_response` wrapper around it, each of
which adds calls to every request and to every message sent (BENCHMARKS.md, fourteenth session,
measures the difference). What those layers give such a request is kept:
- the route is the one Starlette's router would pick (the first route to match fully, in the app's
  order; only the routes up to the last direct one are looked at, and a request none of them matches
  fully goes the usual way);
- the scope gets what Starlette and FastAPI put there (`app`, `router`, `route`, `endpoint`,
  `path_params`, FastAPI's exit stacks, which its own handler needs when the route declines to parse);
- `FaultBarrier` still wraps it (a fault is logged without its message and answered 500), and an
  HTTPException goes to the app's handler for it, as the exception middleware would send it.
The route handler itself answers everything else (sharing_api/router.py `SharingRoute`).
"""

import inspect
from collections.abc import Sequence
from contextlib import AsyncExitStack
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from starlette.exceptions import HTTPException
from starlette.routing import BaseRoute, Match
from starlette.types import Receive, Scope, Send

from base.faults import FaultBarrier
from sharing_api.router import SharingRoute


def routes_to_match(routes: Sequence[BaseRoute]) -> tuple[BaseRoute, ...]:
    """The app's routes up to its last direct one: a route after that one cannot be matched first."""
    direct = [i for i, r in enumerate(routes) if isinstance(r, SharingRoute) and r.direct_handler is not None]
    return tuple(routes[: direct[-1] + 1]) if direct else ()


def direct_route(routes: Sequence[BaseRoute], scope: Scope) -> tuple[SharingRoute, Scope] | None:
    """The route Starlette's router would give this request and the scope it adds, if it is direct."""
    for route in routes:
        match, child = route.matches(scope)
        if match is Match.FULL:
            if isinstance(route, SharingRoute) and route.direct_handler is not None:
                return route, child
            return None
    return None


class Edge:
    """Answers the direct routes' requests of one app (see the module's docstring)."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self.routes = routes_to_match(app.router.routes)
        self.barrier = FaultBarrier(self._answer)

    def route_of(self, scope: Scope) -> tuple[SharingRoute, Scope] | None:
        """The direct route for an HTTP request, or None (the app's middleware and router then take it)."""
        if scope["type"] != "http" or not self.routes or self.app.root_path:
            return None
        return direct_route(self.routes, scope)

    async def __call__(
        self, found: tuple[SharingRoute, Scope], scope: Scope, receive: Receive, send: Send
    ) -> None:
        route, child = found
        scope["app"] = self.app
        scope["router"] = self.app.router
        scope["route"] = route
        scope.update(child)
        await self.barrier(scope, receive, send)

    async def _answer(self, scope: Scope, receive: Receive, send: Send) -> None:
        route: SharingRoute = scope["route"]
        assert route.direct_handler is not None
        request = Request(scope, receive, send)
        try:
            async with AsyncExitStack() as middleware_stack, AsyncExitStack() as request_stack:
                scope["fastapi_middleware_astack"] = middleware_stack
                scope["fastapi_inner_astack"] = request_stack
                async with AsyncExitStack() as function_stack:
                    scope["fastapi_function_astack"] = function_stack
                    response = await route.direct_handler(request)
                await response(scope, receive, send)
        except HTTPException as exc:  # answered as Starlette's exception middleware would
            handlers = self.app.exception_handlers
            handler = handlers.get(exc.status_code) or handlers.get(HTTPException) or http_exception_handler
            answer: Any = handler(request, exc)
            if inspect.isawaitable(answer):
                answer = await answer
            await answer(scope, receive, send)
