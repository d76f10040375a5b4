"""GET /readyz of an engine's supervision endpoint: its status and JSON detail.

Touches: network (127.0.0.1).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request


def readyz(port: int, timeout: float = 30.0) -> tuple[int, dict[str, object]]:
    """(HTTP status, the JSON body) of ``http://127.0.0.1:<port>/readyz``, 503 included."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=timeout) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, json.loads(exc.read())
