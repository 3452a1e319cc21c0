"""The background uvicorn server that fronts the local stack and the SageMaker emulator."""

import socket

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from local.plumbing.server import BackgroundServer


async def _answer(_: Request) -> Response:
    return JSONResponse({"label": "sport", "score": 0.9})


def test_connections_send_without_nagle_delay() -> None:
    """uvicorn writes a response's headers and body separately: with Nagle's algorithm on, the
    body waits for the client's delayed ACK of the headers, 40 ms per request on Linux."""
    server = BackgroundServer(Starlette(routes=[Route("/", _answer)]), "127.0.0.1", 0)
    server.start()
    try:
        with httpx.Client() as client:
            assert client.get(server.origin).json() == {"label": "sport", "score": 0.9}
            # The client keeps its connection open: read the server's end of it.
            (connection,) = server._server.server_state.connections
            sock = connection.transport.get_extra_info("socket")
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    finally:
        server.stop()
