"""A web server on 127.0.0.1 for download tests: files from memory, HTTP ``Range``, optionally a broken first
transfer. The ``contacted`` fixture (tests/conftest.py) fails a test on any connection beyond loopback."""

from __future__ import annotations

import http.server
import threading
from typing import Any


class Server:
    """Serve files from memory on 127.0.0.1 with HTTP Range; optionally drop the first transfer half-way."""

    def __init__(self, files: dict[str, bytes], drop_first: bool = False) -> None:
        self.files, self.drop_first, self.requests = files, drop_first, []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests.append((self.command, self.path, self.headers.get("Range")))
                data = server.files.get(self.path.lstrip("/"))
                if data is None:
                    self.send_error(404)
                    return
                start = int(self.headers["Range"].split("=")[1].split("-")[0]) if self.headers.get("Range") else 0
                self.send_response(206 if start else 200)
                self.send_header("Content-Length", str(len(data) - start))
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.end_headers()
                if server.drop_first and not start:
                    server.drop_first = False
                    self.wfile.write(data[: len(data) // 2])  # then the connection closes: a broken download
                    self.close_connection = True
                    return
                self.wfile.write(data[start:])

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> Server:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
