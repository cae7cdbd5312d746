"""
Docker ``HEALTHCHECK``: exit 0 when the node's ``/healthz`` answers 200.

The URL is the first argument, else ``MMO_HEALTH_URL`` (the image sets it
to the default ``http`` endpoint, 127.0.0.1:9100); ``/readyz`` works too. The reason of a 503 is printed, so that
``docker inspect`` shows why a node is unhealthy.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request

DEFAULT_URL = "http://127.0.0.1:9100/healthz"


def main() -> int:
    url = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("MMO_HEALTH_URL", DEFAULT_URL)
    try:
        with urllib.request.urlopen(url, timeout=2.5) as response:
            print(response.read(512).decode(errors="replace").strip())
            return 0
    except urllib.error.HTTPError as e:
        print(f"{e.code}: {e.read(512).decode(errors='replace').strip()}")
    except (OSError, ValueError) as e:
        print(f"{url}: {e}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
