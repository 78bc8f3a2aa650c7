"""The image's HEALTHCHECK: GET /healthz where the bot serves it (HEALTH_HOST:HEALTH_PORT)."""

import os
import sys
import urllib.request

host = os.environ.get("HEALTH_HOST", "127.0.0.1")
if host in ("", "0.0.0.0", "::"):  # bound to every interface: ask on loopback
    host = "127.0.0.1"
if ":" in host:
    host = f"[{host}]"
url = f"http://{host}:{os.environ.get('HEALTH_PORT', '8080')}/healthz"
try:
    with urllib.request.urlopen(url, timeout=3):
        pass
except OSError as error:
    print(f"{url}: {error}", file=sys.stderr)
    sys.exit(1)
