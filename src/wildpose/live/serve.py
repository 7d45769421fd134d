"""``wildpose live --serve [PORT]``: a live 3D view in the browser, fed over a websocket.

A small server on 127.0.0.1 only (nothing is exposed to the network) runs on its own thread (asyncio, the
``websockets`` package): ``GET /`` answers one page (the viewer's vendored three.js, ``live.js``), and
``/ws`` is a websocket on which every output line (the JSON of schema.json) is sent as it is written. A slow
browser is skipped rather than waited for (``websockets.broadcast`` drops a message for a connection whose
send buffer is full), so the view never slows processing down.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from importlib import resources

from wildpose.errors import UsageError

log = logging.getLogger(__name__)

DEFAULT_PORT = 8765


def page() -> str:
    """The live view's HTML: three.js and live.js inline (no network needed)."""
    three = resources.files("wildpose.viewer").joinpath("vendor/three.bundle.min.js").read_text(encoding="utf-8")
    script = resources.files(__package__).joinpath("live.js").read_text(encoding="utf-8")
    for text in (three, script):
        if "</script" in text.lower():
            raise ValueError("a script holds '</script' and cannot be inlined")
    return ("<!doctype html><html><head><meta charset='utf-8'><title>wildpose live</title><style>"
            "html,body{margin:0;height:100%;background:#181a1e;color:#ddd;font:13px sans-serif;overflow:hidden}"
            "#status{position:absolute;left:8px;top:6px;white-space:pre}canvas{display:block}</style></head>"
            f"<body><div id='status'>connecting...</div><script>{three}</script><script>{script}</script>"
            "</body></html>")


class LiveServer:
    """Serve the live view on ``http://127.0.0.1:PORT/`` (PORT 0: any free port, see ``port``)."""

    def __init__(self, port: int = DEFAULT_PORT):
        try:
            import websockets  # noqa: F401
        except ImportError:
            raise UsageError("--serve needs the websockets package (pip install 'wildpose[live]')") from None
        self.port = int(port)
        self._html = page().encode("utf-8")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._clients: set = set()
        self._ready = threading.Event()
        self._stopped: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="wildpose-live-server", daemon=True)

    def start(self) -> "LiveServer":
        self._thread.start()
        self._ready.wait(10.0)
        if self._error is not None:
            raise UsageError(f"--serve: cannot listen on 127.0.0.1:{self.port} ({self._error})")
        return self

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # reported by start()
            self._error = exc
            self._ready.set()

    async def _main(self) -> None:
        from websockets.asyncio.server import serve
        from websockets.datastructures import Headers
        from websockets.http11 import Response

        html = self._html

        async def process_request(connection, request):
            if request.path == "/ws":
                return None
            if request.path in ("/", "/index.html"):
                headers = Headers([("Content-Type", "text/html; charset=utf-8"), ("Content-Length", str(len(html))),
                                   ("Cache-Control", "no-store")])
                return Response(200, "OK", headers, html)
            return connection.respond(404, "not found\n")

        async def handler(connection):
            self._clients.add(connection)
            try:
                await connection.wait_closed()
            finally:
                self._clients.discard(connection)

        self._loop = asyncio.get_running_loop()
        self._stopped = asyncio.Event()
        async with serve(handler, "127.0.0.1", self.port, process_request=process_request,
                         max_size=2**16) as server:
            self.port = server.sockets[0].getsockname()[1] if server.sockets else self.port
            self._ready.set()
            await self._stopped.wait()

    def publish(self, line: str) -> None:
        """Send one output line to every connected browser (from any thread)."""
        if self._loop is None or not self._clients:
            return
        from websockets.asyncio.server import broadcast

        self._loop.call_soon_threadsafe(broadcast, set(self._clients), line)

    def close(self) -> None:
        if self._loop is not None and self._stopped is not None:
            self._loop.call_soon_threadsafe(self._stopped.set)
        self._thread.join(timeout=5.0)
