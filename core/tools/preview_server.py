"""The preview's web server: the page, its status and pictures, and its two buttons, over HTTP.

It listens on 127.0.0.1 only, and every request must carry the random token of the URL it prints, or it
gets 403: another user of the machine, or a web page in the browser, cannot read or stop the run. It
runs on threads of its own and reads only what the ``Preview`` has published, under its lock.
"""

from __future__ import annotations

import http.server
import json
import secrets
import sys
import threading
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, urlsplit

from .preview import Preview

__all__ = ["PreviewServer"]


class PreviewServer:
    """The local web server of a ``Preview``: 127.0.0.1 only, a random token, on its own threads."""

    def __init__(self, preview: Preview, port: int = 0) -> None:
        self.preview, self.token = preview, secrets.token_urlsafe(16)
        self.page = resources.files(__package__).joinpath("preview.html").read_bytes()
        handler = type("Handler", (_Handler,), {"server_of": self})
        self.httpd = _Server(("127.0.0.1", port), handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="stylefw-preview", daemon=True)

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}/?token={self.token}"

    def __enter__(self) -> "PreviewServer":
        self.thread.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class _Server(http.server.ThreadingHTTPServer):
    # a browser opens several connections at once while the run holds the interpreter most of the time:
    # the default backlog of 5 refuses some, and a refused poll looked to the page like a dead server
    request_queue_size = 64

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A browser closed mid-reply (a tab shut, a reload): nothing to report, the run goes on."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class _Handler(http.server.BaseHTTPRequestHandler):
    server_of: PreviewServer

    def log_message(self, format: str, *args: Any) -> None:  # the terminal shows the run, not each request
        return

    def _allowed(self) -> bool:
        token = parse_qs(urlsplit(self.path).query).get("token", [""])[0]
        if secrets.compare_digest(token, self.server_of.token):
            return True
        self._send(403, b"forbidden: open the URL stylefw printed, with its token\n", "text/plain; charset=utf-8")
        return False

    def _send(self, code: int, body: bytes, kind: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if not self._allowed():
            return
        route = urlsplit(self.path).path
        status, png = self.server_of.preview.published.read()
        if route == "/":
            self._send(200, self.server_of.page, "text/html; charset=utf-8")
        elif route == "/status":
            self._send(200, json.dumps(status, default=str).encode(), "application/json")
        elif route == "/image.png" and png is not None:
            self._send(200, png, "image/png")
        elif route == "/thumbnail.png":
            index = parse_qs(urlsplit(self.path).query).get("job", [""])[0]
            with self.server_of.preview.published.lock:
                found = self.server_of.preview.published.thumbnails.get(int(index)) if index.isdigit() else None
            if found is None:
                self._send(404, b"no such thumbnail\n", "text/plain; charset=utf-8")
            else:
                self._send(200, found, "image/png")
        else:
            self._send(404, b"not found\n", "text/plain; charset=utf-8")

    def do_POST(self) -> None:
        if not self._allowed():
            return
        route = urlsplit(self.path).path
        if route == "/stop":
            self.server_of.preview.ask_stop()
        elif route == "/snapshot":
            self.server_of.preview.ask_save()
        else:
            self._send(404, b"not found\n", "text/plain; charset=utf-8")
            return
        self._send(202, b"{}", "application/json")
