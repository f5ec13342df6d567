"""A JSON-over-HTTP server on loopback for engine tests: stdlib only, one thread per request."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Answer = Callable[[str, bytes], tuple[int, Any]]
"""(request path, request body) -> (HTTP status, JSON body). Runs on the request's thread."""


@contextmanager
def json_server(answer: Answer) -> Iterator[str]:
    """Serve every POST with ``answer``; yields the base URL ``http://127.0.0.1:PORT/v1``."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            status, body = answer(
                self.path, self.rfile.read(int(self.headers.get("Content-Length", 0)))
            )
            content = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(content)))
            self.end_headers()
            self.wfile.write(content)

        def log_message(self, *args: Any) -> None:
            pass  # a test's output stays its own

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    finally:
        httpd.shutdown()
        httpd.server_close()
