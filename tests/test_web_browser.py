"""
End to end in a real browser: headless Chromium, driven by selenium through
the system's chromedriver, loads a node's page, broadcasts and receives.

The nodes run in the test reactor; every browser call runs in a thread
(the page's requests need the reactor while selenium waits for them).
Set P2P_UPDATE_SCREENSHOT=1 to refresh docs/web-ui.png from this test.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.internet.threads import deferToThread

from helpers import address
from test_web import baseURL, web  # noqa: F401 (the fixture)

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
SCREENSHOT = Path(__file__).resolve().parent.parent / "docs" / "web-ui.png"
DEADLINE = 20.0

# Flags under which Chromium starts quickly on a machine with no network
# and no display.
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
    "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--window-size=1280,960",
]


def missingBrowser() -> str:
    """Why the browser test cannot run here, or "" if it can."""
    missing = [path for path in (CHROMIUM, CHROMEDRIVER)
               if not os.access(path, os.X_OK)]
    if missing:
        return (f"BROWSER TEST NOT RUN: {' and '.join(missing)} not found; "
                f"install Debian's chromium and chromium-driver (.ci/run does)")
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "BROWSER TEST NOT RUN: selenium is not installed (pip install '.[test]')"
    return ""


@pytest.fixture
def browser(tmp_path):
    why = missingBrowser()
    if why:
        pytest.skip(why)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'profile'}")
    service = Service(executable_path=CHROMEDRIVER,
                      log_output=str(tmp_path / "chromedriver.log"))
    driver = pytest_twisted.blockon(
        deferToThread(webdriver.Chrome, service=service, options=options))
    driver.set_page_load_timeout(DEADLINE)
    try:
        yield driver
    finally:
        pytest_twisted.blockon(deferToThread(driver.quit))


@inlineCallbacks
def pageValue(driver, script: str, predicate, what: str):
    """
    Run C{script} in the page until C{predicate} holds for its result;
    fail after L{DEADLINE} seconds.
    """
    deadline = reactor.seconds() + DEADLINE
    while True:
        value = yield deferToThread(driver.execute_script, script)
        if predicate(value):
            return value
        if reactor.seconds() > deadline:
            raise AssertionError(
                f"timed out waiting for {what}; last value: {value!r}")
        yield deferToThread(lambda: None)


FEED_BODIES = ("return Array.from(document.querySelectorAll('#feed .body'))"
               ".map(e => e.textContent);")


@pytest_twisted.inlineCallbacks
def test_broadcast_and_receive_in_the_page(overlay, web, browser, tmp_path):  # noqa: F811
    from selenium.webdriver.common.by import By

    a = yield overlay.start(name="alice")
    b = yield overlay.start(join=a, name="bob")
    d = yield overlay.start(join=a, name="dave")
    c = yield overlay.start(join=a, name="carol")
    yield c.stopService()  # carol left: known, not connected
    service = web.start(a)

    yield deferToThread(browser.get, baseURL(service) + "/")
    yield pageValue(browser, "return document.getElementById('node-id')"
                    ".textContent;", lambda v: v == a.nodeId, "the node id")
    yield pageValue(browser, "return document.getElementById('feed-status')"
                    ".textContent;", lambda v: v == "live", "the live feed")
    # On loopback no peer's observation counts: reachability is unknown.
    yield pageValue(browser, "return document.getElementById('node-reach')"
                    ".textContent;", lambda v: v == "unknown", "reachability")
    states = yield pageValue(
        browser, "return Array.from(document.querySelectorAll('#peers tbody tr'))"
        ".map(r => [r.children[2].textContent, r.children[3].textContent]);",
        lambda v: len(v) == 3, "three peers in the table")
    assert sorted(states) == [["bob", "connected"], ["carol", "left"],
                              ["dave", "connected"]]
    drawn = yield deferToThread(
        browser.execute_script,
        "return ['me', 'connected', 'other'].map(c => "
        "document.querySelectorAll('#overlay circle.' + c).length);")
    assert drawn == [1, 2, 1]

    # Broadcast from the page's form: it reaches bob over TCP, and the
    # page's feed shows it sent.
    shout = "<b>hello</b> from the page"
    field = yield deferToThread(browser.find_element, By.ID, "broadcast-body")
    yield deferToThread(field.send_keys, shout)
    button = yield deferToThread(
        browser.find_element, By.CSS_SELECTOR, "#broadcast-form button")
    yield deferToThread(button.click)
    yield pageValue(browser, FEED_BODIES, lambda v: shout in v,
                    "the broadcast in alice's feed")
    assert overlay.recorder(b).bodies("broadcast") == [shout]
    assert overlay.recorder(d).bodies("broadcast") == [shout]

    # A direct message from bob shows up in alice's page, as text.
    reply = '<img src=x onerror="document.title=\'owned\'"> hi alice'
    yield b.send(address(a), reply)
    bodies = yield pageValue(browser, FEED_BODIES, lambda v: reply in v,
                             "bob's message in alice's feed")
    assert bodies.index(reply) < bodies.index(shout)  # newest first
    markup = yield deferToThread(
        browser.execute_script,
        "return [document.querySelectorAll('#feed img, #feed b').length,"
        " document.title];")
    assert markup == [0, "p2poverlay alice"]
    sender = yield deferToThread(
        browser.execute_script,
        "return document.querySelector('#feed li.message.in .meta')"
        ".textContent;")
    assert f"from {address(b)}" in sender

    yield deferToThread(browser.execute_script, "window.scrollTo(0, 0);")
    shot = tmp_path / "web-ui.png"
    yield deferToThread(browser.save_screenshot, str(shot))
    assert shot.read_bytes().startswith(b"\x89PNG")
    if os.environ.get("P2P_UPDATE_SCREENSHOT"):
        shutil.copyfile(shot, SCREENSHOT)
