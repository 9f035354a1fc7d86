"""
Embedding p2poverlay in your own Twisted program.

This bot joins an overlay and answers every direct message with the same
text in upper case.  Run it beside a node started with twistd:

    twistd -n p2p --port 9000
    python examples/echo_bot.py --port 9100 --join 127.0.0.1:9000

then type ``send 127.0.0.1:9100 hello`` at the node's console.
"""

import argparse

from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.task import react

from p2poverlay import Node, NodeConfig, NodeObserver, parseAddress


class EchoBot(NodeObserver):
    """Answers direct messages; ignores broadcasts."""

    def __init__(self, node: Node) -> None:
        self.node = node
        node.addObserver(self)

    def messageReceived(self, message):
        if message.kind == "direct":
            reply = self.node.send(message.sender_id, message.body.upper())
            reply.addErrback(lambda failure: print(
                "reply failed:", failure.getErrorMessage()))

    def peerConnected(self, peer):
        print("connected:", peer.describe())


def makeBot(listen="tcp:0", join=(), name="echo-bot", reactor=None) -> Node:
    """A Node with an EchoBot attached; start it with node.startService()."""
    node = Node(NodeConfig(listen=listen, join=tuple(join), name=name),
                reactor=reactor)
    EchoBot(node)
    return node


@inlineCallbacks
def main(reactor, argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--port", default="tcp:0",
                        help="port or server endpoint to listen on")
    parser.add_argument("--join", action="append", default=[],
                        type=parseAddress, help="HOST:PORT of a member")
    args = parser.parse_args(argv)
    listen = f"tcp:{args.port}" if args.port.isdigit() else args.port
    node = makeBot(listen, args.join, reactor=reactor)
    node.startService()
    port = yield node.listening
    print(f"echo bot {node.shortId} listening on port {port.getHost().port}")
    # Say BYE to the peers when the program stops (Ctrl-C).
    reactor.addSystemEventTrigger("before", "shutdown", node.stopService)
    yield Deferred()  # run until stopped


if __name__ == "__main__":
    react(main)
