"""The embedding example runs inside another program's reactor."""

import importlib.util
from pathlib import Path

import pytest_twisted

from helpers import address, waitFor

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "echo_bot.py"


def loadExample():
    spec = importlib.util.spec_from_file_location("echo_bot", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest_twisted.inlineCallbacks
def test_echo_bot_answers_direct_messages(overlay):
    user = yield overlay.start(name="user", plaintext=False)  # as the bot
    bot = loadExample().makeBot("tcp:0:interface=127.0.0.1",
                                join=[("127.0.0.1", user.listenPort)])
    overlay.nodes.append(bot)  # so that the fixture stops it
    bot.startService()
    yield bot.listening
    peer = yield user.send(address(bot), "hello bot")
    assert peer.name == "echo-bot"
    recorder = overlay.recorder(user)
    yield waitFor(lambda: recorder.bodies("direct"), what="the echo")
    assert recorder.bodies("direct") == ["HELLO BOT"]
    assert recorder.messages[0].sender_id == bot.nodeId
