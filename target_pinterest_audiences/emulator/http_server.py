"""The socket side: a threading HTTP/1.1 server, body framing, and answers as JSON."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .outcome import Outcome

# (method, target, lowercase headers, body) -> answer; the control API gets no headers
ApiHandler = Callable[[str, str, dict[str, str], bytes], Outcome]
ControlHandler = Callable[[str, str, bytes], Outcome]


class _ClientGone(Exception):
    """The client closed the connection before its request body fully arrived."""


class HttpServer:
    """Serves ``serve_api`` and, for paths under ``control_prefix``, ``serve_control`` on a
    background thread; keeps the open connections so that ``stop`` can close them."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        serve_api: ApiHandler,
        serve_control: ControlHandler,
        control_prefix: str,
    ) -> None:
        self.host = host
        self.port = port
        self.serve_api = serve_api
        self.serve_control = serve_control
        self.control_prefix = control_prefix
        self.connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._server is not None:
            return
        server = _Server((self.host, self.port), _Handler)
        server.owner = self
        self._server = server
        self.port = int(server.server_address[1])
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"pinterest-emulator-{self.port}",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        with self._connections_lock:
            conns = list(self.connections)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def opened(self, conn: socket.socket) -> None:
        with self._connections_lock:
            self.connections.add(conn)

    def closed(self, conn: socket.socket) -> None:
        with self._connections_lock:
            self.connections.discard(conn)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128
    owner: HttpServer


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "PinterestEmulator/1.0"
    wbufsize = 64 * 1024
    disable_nagle_algorithm = True
    timeout = 120
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.owner.opened(self.connection)

    def handle(self) -> None:
        # a client that hangs up (timeout, dropped connection) is normal here, not an error
        with contextlib.suppress(ConnectionError, TimeoutError):
            super().handle()

    def finish(self) -> None:
        with contextlib.suppress(OSError):
            super().finish()
        self.server.owner.closed(self.connection)

    def log_message(self, format: str, *args: Any) -> None:
        return  # requests are logged (without bodies) by the emulator itself

    def _read_body(self) -> bytes | None:
        """The request body (chunked or by Content-Length); None when framed wrongly."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks: list[bytes] = []
            while True:
                size_line = self.rfile.readline(65537)
                try:
                    size = int(size_line.split(b";", 1)[0].strip(), 16)
                except ValueError:
                    return None
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline(65537)
        length = self.headers.get("Content-Length")
        if not length:
            return b""
        try:
            n = int(length)
        except ValueError:
            return None
        data = self.rfile.read(n) if n > 0 else b""
        if len(data) < n:
            raise _ClientGone  # killed or hung up mid-request: nothing arrived to serve
        return data

    def _dispatch(self) -> None:
        owner = self.server.owner
        try:
            raw = self._read_body()
        except _ClientGone:
            # Like a real server, drop a request whose body never fully arrived (a client
            # killed mid-send): it is neither served nor a spec violation.
            self.close_connection = True
            return
        if raw is None:
            self.close_connection = True
            self._send(Outcome(400, {"code": 1, "message": "malformed request body framing"}))
            return
        if self.path.startswith(owner.control_prefix):
            self._send(owner.serve_control(self.command, self.path, raw))
            return
        headers = {k.lower(): v for k, v in self.headers.items()}
        outcome = owner.serve_api(self.command, self.path, headers, raw)
        if outcome.drop:
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        self._send(outcome)

    def _send(self, outcome: Outcome) -> None:
        payload = b"" if outcome.body is None else json.dumps(outcome.body).encode()
        self.send_response(outcome.status)
        if outcome.status != 204:
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
        for name, value in outcome.headers.items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD" and outcome.status != 204:  # neither answer has a body
            self.wfile.write(payload)

    def __getattr__(self, name: str) -> Any:
        # Every method, TRACE and made-up ones included, is served (and refused with a JSON 405
        # or 404 where the API has no such method or path), never the stdlib's HTML 501 page.
        if name.startswith("do_"):
            return self._dispatch
        raise AttributeError(name)
