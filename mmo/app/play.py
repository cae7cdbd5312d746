"""
The web client at ``/play``: a page, its script and style, and
``/play/config.json``, which tells the page where to open its WebSocket.

The files are package data of :mod:`mmo.app` (``webclient/``), read once
when the site is made and served from memory: no build step, nothing from
another site.  The WebSocket address is the ``websocket_url`` setting when
set (a node behind a proxy), otherwise made from the host name the browser
used for the page and the port the node listens on with ``--websocket``
(``wss`` for an ``ssl:`` endpoint, preferred when the page came over
HTTPS: a secure page may not open a plain WebSocket).
"""

from __future__ import annotations

import json
from importlib.resources import files
from typing import Any

from twisted.web.pages import notFound
from twisted.web.resource import IResource, Resource
from twisted.web.server import Request
from twisted.web.util import redirectTo

from ..config import endpoint_fields

#: The client's files: name -> content type.
FILES = {
    "index.html": "text/html; charset=utf-8",
    "play.css": "text/css; charset=utf-8",
    "protocol.js": "text/javascript; charset=utf-8",
    "map.js": "text/javascript; charset=utf-8",
    "play.js": "text/javascript; charset=utf-8",
    "icon.svg": "image/svg+xml",
}
#: The page runs only its own files and talks only to WebSockets.
POLICY = (b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
          b"connect-src 'self' ws: wss:; base-uri 'none'; form-action 'none'; "
          b"frame-ancestors 'none'")


def load_files() -> dict[str, bytes]:
    """The client's files, from the installed package."""
    folder = files(__package__ or "mmo.app").joinpath("webclient")
    return {name: folder.joinpath(name).read_bytes() for name in FILES}


def _host_name(request: Request) -> str:
    host = request.getRequestHostname().decode("ascii", "replace")
    return f"[{host}]" if ":" in host else host


def websocket_url(service: Any, request: Request) -> str | None:
    """Where the page that ``request`` fetched should connect, or ``None``."""
    ws = service.settings.websocket
    if ws.url:
        return str(ws.url)
    ports = getattr(service, "websocket_ports", [])
    choices = []
    for description, port in zip(ws.endpoints, ports, strict=False):
        kind = endpoint_fields(description)[0].strip().lower()
        address = port.getHost()
        if kind in ("tcp", "tcp6", "ssl") and hasattr(address, "port"):
            choices.append(("wss" if kind == "ssl" else "ws", address.port))
    if not choices:
        return None
    if request.isSecure():
        choices.sort(key=lambda c: c[0] != "wss")
    scheme, port = choices[0]
    return f"{scheme}://{_host_name(request)}:{port}/"


class _File(Resource):
    isLeaf = True

    def __init__(self, body: bytes, content_type: str) -> None:
        super().__init__()
        self.body = body
        self.content_type = content_type.encode()

    def render_GET(self, request: Request) -> bytes:
        request.setHeader(b"content-type", self.content_type)
        # Served from memory and small: always the running node's version.
        request.setHeader(b"cache-control", b"no-cache")
        request.setHeader(b"x-content-type-options", b"nosniff")
        request.setHeader(b"content-security-policy", POLICY)
        return self.body

    render_HEAD = render_GET


class _Config(Resource):
    isLeaf = True

    def __init__(self, service: Any) -> None:
        super().__init__()
        self.service = service

    def render_GET(self, request: Request) -> bytes:
        service = self.service
        node = service.node
        config = {
            "websocket": websocket_url(service, request),
            "node_id": node.node_id,
            "server": node.server_string,
            "zones": list(node.world.zones),
            "tick_rate": node.tick_rate,
        }
        request.setHeader(b"content-type", b"application/json")
        request.setHeader(b"cache-control", b"no-store")
        return json.dumps(config).encode()


class PlayResource(Resource):
    """``/play``: the web client's files and its ``config.json``."""

    def __init__(self, service: Any, contents: dict[str, bytes] | None = None) -> None:
        super().__init__()
        contents = load_files() if contents is None else contents
        self.files = {name.encode(): _File(contents[name], FILES[name]) for name in FILES}
        self.files[b""] = self.files[b"index.html"]
        self.config = _Config(service)

    def getChild(self, path: bytes, request: Request) -> IResource:
        if path == b"config.json":
            return self.config
        child = self.files.get(path)
        if child is None or request.postpath:
            return notFound()
        return child

    def render_GET(self, request: Request) -> bytes:
        # /play: to /play/, so that the page's relative addresses resolve under it.
        return redirectTo(b"play/", request)
