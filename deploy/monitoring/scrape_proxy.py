"""Forward Prometheus' scrape to the API's ``/metrics`` with the read key from a file.

Prometheus 2.x can send a credential from a file only as ``Authorization``, and the API takes
its key from ``X-API-Key`` alone. The key file is read on every scrape, so a rotated key is used
from the next scrape on, without a restart. Standard library only: it runs on the API's image.

    UPSTREAM_METRICS_URL=http://api:8000/metrics API_KEY_FILE=/run/secrets/prometheus_api_key \\
        HOST=0.0.0.0 PORT=9101 python scrape_proxy.py
"""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

UPSTREAM = os.environ.get("UPSTREAM_METRICS_URL", "http://api:8000/metrics")
KEY_FILE = Path(os.environ.get("API_KEY_FILE", "/run/secrets/prometheus_api_key"))
TIMEOUT_SECONDS = 10.0


class ScrapeHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path.split("?", 1)[0] != "/metrics":
            self._answer(404, b"only /metrics\n", "text/plain")
            return
        try:
            key = KEY_FILE.read_text().strip()
        except OSError as exc:
            self._answer(500, f"cannot read the key file: {exc.strerror}\n".encode(), "text/plain")
            return
        headers = {"X-API-Key": key, "Accept": self.headers.get("Accept", "text/plain")}
        request = urllib.request.Request(UPSTREAM, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:
                self._answer(response.status, response.read(), response.headers["Content-Type"])
        except urllib.error.HTTPError as exc:
            # 401/403 reach Prometheus as they are: the target shows "down" with the API's status.
            self._answer(exc.code, exc.read(), exc.headers.get("Content-Type", "text/plain"))
        except (urllib.error.URLError, TimeoutError) as exc:
            self._answer(502, f"upstream unreachable: {exc}\n".encode(), "text/plain")

    def _answer(self, status: int, body: bytes, content_type: str | None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type or "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        # Failed scrapes only: a line for every successful one (each 15 s) would be noise.
        if str(code).startswith(("4", "5")):
            super().log_request(code, size)


def main() -> None:
    # All interfaces of the container: the port is published to no host, only to the network.
    host = os.environ.get("HOST", "0.0.0.0")
    port = int(os.environ.get("PORT", "9101"))
    ThreadingHTTPServer((host, port), ScrapeHandler).serve_forever()


if __name__ == "__main__":
    main()
