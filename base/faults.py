"""Faults no route handled: logged without their message, answered in Chinese, never re-raised.

Starlette answers an unhandled exception with a plain-text 500 and raises it again for the server to
log, and the server logs it whole: a database error's message carries the statement's parameters
(ID numbers, names), which must not reach the logs. `FaultBarrier`, the app's outermost middleware
(inside only Starlette's own error middleware), logs where it failed instead (`log_fault`: the route, the exception's type, the
SQLSTATE and the frames, not the message) and answers 500: JSON with the stable code INTERNAL_ERROR
under /api/, a short page elsewhere.
"""

import logging
import traceback
from typing import Any

from starlette.responses import HTMLResponse, JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger(__name__)

MESSAGE = "服务内部错误，已记入服务日志，请联系平台管理员"
PAGE = f"""<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>服务内部错误 · popex</title></head>
<body style="font-family: sans-serif; margin: 2rem;"><h1>服务内部错误</h1><p>{MESSAGE}。</p>
<p><a href="/">返回首页</a></p></body></html>"""


def log_fault(scope: Scope, exc: BaseException, *, what: str = "request") -> None:
    """Log where a request failed, without the exception's message (it may hold personal data)."""
    route = getattr(scope.get("route"), "path", None) or "?"
    sqlstate = getattr(getattr(exc, "orig", exc), "pgcode", None)
    frames = "".join(traceback.format_tb(exc.__traceback__))
    log.error(
        "%s %s %s failed: %s (SQLSTATE %s)\n%s",
        what,
        scope.get("method", "?"),
        route,
        type(exc).__name__,
        sqlstate,
        frames,
    )


class FaultBarrier:
    """ASGI middleware: an exception out of the app becomes a logged-without-message 500."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def sending(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except Exception as exc:
            log_fault(scope, exc)
            if started:  # too late for an answer: end the response without the original message
                raise RuntimeError("response failed after it started (logged above)") from None
            response: Any
            if scope.get("path", "").startswith("/api/"):
                response = JSONResponse({"code": "INTERNAL_ERROR", "message": MESSAGE, "detail": None}, 500)
            else:
                response = HTMLResponse(PAGE, 500)
            await response(scope, receive, send)
