"""Request bodies refused by size before anything else looks at them (the key, the parser).

FastAPI reads and parses a route's body before its dependencies run, authentication included: without
a limit first, anyone could make the server read and parse a body of any size without a key.
"""

from starlette.requests import Request


class BodyTooLarge(Exception):
    """The request's body is over the limit (declared, or counted while it arrived)."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"request body over {limit} bytes")
        self.limit = limit


def declared_too_large(request: Request, limit: int) -> bool:
    """True when the request's Content-Length says more than `limit` bytes (or cannot be read)."""
    declared = request.headers.get("content-length")
    return declared is not None and (not declared.isdigit() or int(declared) > limit)


async def read_body(request: Request, limit: int) -> None:
    """Read the whole body, refusing it (BodyTooLarge) as soon as it exceeds `limit` bytes: at once
    from its Content-Length, or while a chunked body arrives. The body is kept where Starlette's own
    `Request.body()` keeps it, so the route reads it from memory and not from the socket again."""
    if declared_too_large(request, limit):
        raise BodyTooLarge(limit)
    if request.headers.get("content-length") in (None, "0") and "transfer-encoding" not in request.headers:
        return
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(limit)
        chunks.append(chunk)
    request._body = b"".join(chunks)  # as Request.body() caches it
