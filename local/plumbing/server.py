"""Uvicorn in a background thread: how the local stack and the SageMaker emulator serve HTTP."""

from __future__ import annotations

import socket
import threading
import time
from abc import ABC, abstractmethod
from typing import Literal, Self

import uvicorn
from starlette.applications import Starlette


class Service(ABC):
    """Something local that runs from `start()` to `stop()`; a `with` block does both."""

    @abstractmethod
    def start(self) -> None: ...

    @abstractmethod
    def stop(self) -> None: ...

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def tcp_listener(host: str, port: int) -> socket.socket:
    """A bound TCP socket for uvicorn to serve on (port 0: any free port).

    IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on such sockets' connections, and without
    it uvicorn's body write waits for the client's delayed ACK of the headers (40 ms on Linux
    for every response that has a body).
    """
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host, port))
    return listener


class BackgroundServer:
    """Uvicorn serving an ASGI app from a thread, on a socket bound up front (port 0 works)."""

    def __init__(
        self,
        app: Starlette,
        host: str,
        port: int,
        *,
        name: str = "the local server",
        lifespan: Literal["on", "off"] = "off",
    ) -> None:
        self.name = name
        self._socket = tcp_listener(host, port)
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan=lifespan)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, name=name, daemon=True
        )

    @property
    def origin(self) -> str:
        """`http://host:port`, with the port the socket really got."""
        host, port = self._socket.getsockname()[:2]
        return f"http://{host}:{port}"

    def start(self, timeout_s: float = 30.0) -> None:
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError(f"{self.name} failed to start (see the log above)")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name} did not start in time")
            time.sleep(0.02)

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout=15)
        self._socket.close()
