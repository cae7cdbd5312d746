"""
The web client's files at ``/play`` and its ``config.json`` (where the page
opens its WebSocket).
"""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

from twisted.internet.address import IPv4Address
from twisted.web.test.requesthelper import DummyRequest

from mmo.app.play import FILES, PlayResource, load_files, websocket_url
from mmo.testing import make_node


def service(*ports: int, **overrides: Any) -> SimpleNamespace:
    node = make_node(**overrides)
    return SimpleNamespace(
        node=node, settings=node.settings,
        websocket_ports=[SimpleNamespace(getHost=lambda p=p: IPv4Address("TCP", "0.0.0.0", p))
                         for p in ports])


def get(resource: Any, path: bytes, host: bytes = b"127.0.0.1", secure: bool = False,
        ) -> tuple[int, bytes, Any]:
    parts = path.lstrip(b"/").split(b"/")
    request = DummyRequest(parts[1:])
    request.requestHeaders.setRawHeaders(b"host", [host + b":9100"])
    request.getRequestHostname = lambda: host  # type: ignore[method-assign]
    request.isSecure = lambda: secure  # type: ignore[method-assign]
    child = resource
    while request.postpath:
        name = request.postpath.pop(0)
        request.prepath.append(name)
        child = child.getChild(name, request)
    body = child.render(request)
    return request.responseCode or 200, body, request.responseHeaders


def test_the_files_are_in_the_package() -> None:
    contents = load_files()
    assert set(contents) == set(FILES)
    page = contents["index.html"].decode()
    # Everything the page loads is its own: nothing from another site.
    for name in ("play.css", "protocol.js", "map.js", "play.js", "icon.svg"):
        assert f'"{name}"' in page
    assert "http://" not in page and "https://" not in page
    assert all(b"https://" not in body for name, body in contents.items()
               if name.endswith((".js", ".css")))


def test_play_serves_the_page_its_files_and_a_redirect() -> None:
    play = PlayResource(service(4080, websocket=["tcp:4080"]))
    request = DummyRequest([])
    body = play.render(request)
    assert request.responseCode == 302 and request.responseHeaders.getRawHeaders(
        b"location") == [b"play/"]
    assert body
    code, body, headers = get(play, b"/play/")
    assert code == 200 and b"<canvas" in body
    assert headers.getRawHeaders(b"content-type") == [b"text/html; charset=utf-8"]
    policy = headers.getRawHeaders(b"content-security-policy")[0]
    assert b"script-src 'self'" in policy and b"connect-src 'self' ws: wss:" in policy
    code, body, headers = get(play, b"/play/play.js")
    assert code == 200 and headers.getRawHeaders(b"content-type")[0].startswith(
        b"text/javascript")
    code, _, _ = get(play, b"/play/nothing.js")
    assert code == 404
    code, _, _ = get(play, b"/play/play.js/more")
    assert code == 404


def test_config_names_the_websocket_of_the_pages_host() -> None:
    svc = service(4080, websocket=["tcp:4080"])
    _, body, headers = get(PlayResource(svc), b"/play/config.json", host=b"game.example.org")
    config = json.loads(body)
    assert config["websocket"] == "ws://game.example.org:4080/"
    assert config["zones"] == ["world", "arena"] and config["node_id"] == "test-node"
    assert headers.getRawHeaders(b"cache-control") == [b"no-store"]


def test_config_prefers_wss_for_a_secure_page() -> None:
    svc = service(4080, 4443, websocket=["tcp:4080", "ssl:4443:privateKey=k.pem"])
    request = SimpleNamespace(getRequestHostname=lambda: b"h", isSecure=lambda: True)
    assert websocket_url(svc, request) == "wss://h:4443/"  # type: ignore[arg-type]
    request.isSecure = lambda: False
    assert websocket_url(svc, request) == "ws://h:4080/"  # type: ignore[arg-type]
    request.getRequestHostname = lambda: b"::1"
    assert websocket_url(svc, request) == "ws://[::1]:4080/"  # type: ignore[arg-type]


def test_config_without_a_websocket_or_with_an_address_given() -> None:
    _, body, _ = get(PlayResource(service()), b"/play/config.json")
    assert json.loads(body)["websocket"] is None
    svc = service(4080, websocket=["tcp:4080"], websocket_url="wss://play.example.com/ws")
    _, body, _ = get(PlayResource(svc), b"/play/config.json")
    assert json.loads(body)["websocket"] == "wss://play.example.com/ws"
