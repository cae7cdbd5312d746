"""
The web client in a real headless Chromium (Debian's ``chromium`` and
``chromium-driver``, driven with selenium), against a real node: two
browser players log in at ``/play``, see each other move (keyboard and
click), chat, and play with a TCP player who sees them and whom they see.

``MMO_SCREENSHOT=docs/webclient.png pytest tests/test_webclient_browser.py``
also writes the screenshot the README shows.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support import WireClient, wait_until

from mmo.wire import messages as m

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None or DRIVER is None,
    reason="needs Debian's chromium and chromium-driver (scripts/system-deps.sh installs them)")

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402

#: A small town: everyone who logs in stands near its centre and sees all of it.
NODE_ARGS = ("--websocket", "tcp:0:interface=127.0.0.1", "--zone", "town:400x400",
             "--zone", "arena:300x300", "--npcs", "town:12")


@pytest.fixture
def browsers(tmp_path: Path) -> Iterator[Any]:
    """Start headless Chromium browsers; each is quit at the end."""
    started: list[Any] = []

    def start() -> Any:
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        profile = tempfile.mkdtemp(prefix="chromium-", dir=tmp_path)
        for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    "--disable-dev-shm-usage", f"--user-data-dir={profile}",
                    "--window-size=1280,760", "--force-device-scale-factor=1"):
            options.add_argument(arg)
        driver = webdriver.Chrome(options=options, service=Service(DRIVER))
        driver.set_page_load_timeout(20)
        driver.set_script_timeout(10)
        started.append(driver)
        return driver

    yield start
    for driver in started:
        driver.quit()


def game(driver: Any, expression: str) -> Any:
    """``expression`` evaluated on the page's ``game`` (``window.mmoGame``)."""
    return driver.execute_script(f"const game = window.mmoGame; return {expression};")


def entities(driver: Any) -> dict[str, dict[str, Any]]:
    return game(driver, "Object.fromEntries([...game.entities.values()].map("
                        "e => [e.name, {x: e.x, y: e.y, type: e.type}]))")


def log_in(driver: Any, http_port: int, name: str) -> None:
    driver.get(f"http://127.0.0.1:{http_port}/play")
    assert driver.current_url.endswith("/play/")
    driver.find_element(By.ID, "name").send_keys(name)
    driver.find_element(By.ID, "password").send_keys("secret")
    driver.find_element(By.ID, "login").click()
    wait_until(lambda: game(driver, "game.state") == "playing", timeout=10,
               what=f"{name} to enter the world")


def chat_lines(driver: Any) -> list[str]:
    return game(driver, "game.chat.map(c => c.sender + ': ' + c.text)")


def test_two_browsers_and_a_tcp_player_play_together(start_node: Any, browsers: Any) -> None:
    node = start_node(*NODE_ARGS)
    alice, bob = browsers(), browsers()
    log_in(alice, node.http_port, "alice")
    log_in(bob, node.http_port, "bob")
    carol = WireClient(node.port)
    carol_enter = carol.login("carol")

    # Everyone sees everyone: the browsers on their maps, carol in her frames.
    for driver, others in ((alice, {"bob", "carol"}), (bob, {"alice", "carol"})):
        wait_until(lambda d=driver, o=others: o <= set(entities(d)), timeout=10,
                   what="the other players on the map")
    seen: set[str] = set()
    wait_until(lambda: seen.update(e.name for msg in carol.drain(0.2)
                                   if isinstance(msg, m.Enter) for e in msg.entities)
               or {"alice", "bob"} <= seen, timeout=10, what="carol to see alice and bob")
    assert any(e["type"] == m.Kind.NPC for e in entities(alice).values())

    # Bob walks right with the keyboard: alice sees him go, and so does carol.
    bob_id = game(bob, "game.me.id")
    start_x = entities(alice)["bob"]["x"]
    canvas = bob.find_element(By.ID, "map")
    ActionChains(bob).move_to_element(canvas).key_down(Keys.ARROW_RIGHT).perform()
    try:
        wait_until(lambda: entities(alice)["bob"]["x"] > start_x + 10, timeout=10,
                   what="alice to see bob walk right")
    finally:
        ActionChains(bob).key_up(Keys.ARROW_RIGHT).perform()
    carol.expect(m.Moves, lambda mv: any(e[0] == bob_id and e[1] > start_x for e in mv.moves))

    # Alice clicks below herself on the map and walks there.
    alice_y = game(alice, "game.me.y")
    canvas = alice.find_element(By.ID, "map")
    ActionChains(alice).move_to_element_with_offset(canvas, 0, 120).click().perform()
    wait_until(lambda: entities(bob)["alice"]["y"] > alice_y + 10, timeout=10,
               what="bob to see alice walk to where she clicked")

    # Carol (TCP) moves: both browsers see it.
    carol.send(m.Move(1, carol_enter.x - 0.5, carol_enter.y))
    for driver in (alice, bob):
        wait_until(lambda d=driver: abs(entities(d)["carol"]["x"] - (carol_enter.x - 0.5)) < 0.01,
                   timeout=10, what="the browsers to see carol move")

    # Chat: typed in one browser, read in the other and by carol; and back.
    chat = alice.find_element(By.ID, "chat-input")
    chat.send_keys("hello from alice's browser", Keys.ENTER)
    wait_until(lambda: "alice: hello from alice's browser" in chat_lines(bob), timeout=10,
               what="bob to read alice")
    said = carol.expect(m.ChatMessage, lambda c: c.sender == "alice")
    assert said.text == "hello from alice's browser"
    carol.send(m.Chat(m.Channel.ZONE, "hi browsers, carol here"))
    for driver in (alice, bob):
        wait_until(lambda d=driver: "carol: hi browsers, carol here" in chat_lines(d),
                   timeout=10, what="the browsers to read carol")
    bob.find_element(By.ID, "chat-input").send_keys("@alice psst", Keys.ENTER)
    wait_until(lambda: "bob: psst" in chat_lines(alice), timeout=10, what="a whisper")

    # Who is online, in the side panel.
    bob.find_element(By.ID, "who-button").click()
    wait_until(lambda: {"alice", "bob", "carol"} <= set(
        bob.find_element(By.ID, "who-list").text.split()), timeout=10, what="the who list")

    for driver in (alice, bob):
        assert not [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    shot = Path(node.log_path).parent / "webclient.png"
    alice.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": 1280, "height": 720, "deviceScaleFactor": 1, "mobile": False})
    wait_until(lambda: game(alice, "document.getElementById('map').height") == 720,
               timeout=10, what="the map to fill the page")
    alice.save_screenshot(str(shot))
    assert shot.stat().st_size > 10_000
    target = os.environ.get("MMO_SCREENSHOT")
    if target:
        shutil.copyfile(shot, target)


def test_the_page_says_when_the_node_takes_no_browsers(start_node: Any, browsers: Any) -> None:
    node = start_node()
    driver = browsers()
    driver.get(f"http://127.0.0.1:{node.http_port}/play/")
    wait_until(lambda: "--websocket" in driver.find_element(By.ID, "login-error").text,
               timeout=10, what="the page to say the node has no WebSocket")


def test_a_refused_login_is_shown_and_may_be_tried_again(start_node: Any, browsers: Any) -> None:
    node = start_node(*NODE_ARGS)
    first, second = browsers(), browsers()
    log_in(first, node.http_port, "dana")
    second.get(f"http://127.0.0.1:{node.http_port}/play")
    second.find_element(By.ID, "name").send_keys("dana")
    second.find_element(By.ID, "password").send_keys("wrong")
    second.find_element(By.ID, "login").click()
    error = second.find_element(By.ID, "login-error")
    wait_until(lambda: "AUTH_FAILED" in error.text, timeout=10, what="the refusal")
    second.find_element(By.ID, "password").clear()
    second.find_element(By.ID, "password").send_keys("secret")
    second.find_element(By.ID, "login").click()
    wait_until(lambda: game(second, "game.state") == "playing", timeout=10,
               what="the second try")
    # The newest login wins: the first page says why it was closed.
    wait_until(lambda: "NAME_IN_USE" in first.find_element(By.ID, "login-error").text,
               timeout=10, what="the first page to be told")
