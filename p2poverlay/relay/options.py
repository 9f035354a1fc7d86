"""The plugin's options of relaying (L{p2poverlay.tap} lists them)."""

from p2poverlay.taphelp import BYTES, COUNT, SECONDS

# (option, NodeConfig field, kind, help), as p2poverlay.tap's settings.
RELAY_SETTINGS = [
    ("relay-circuits", "relayCircuits", COUNT,
     "Most circuits relayed for others at once (each holds at most 512 KiB "
     "in flight)."),
    ("relay-reservations", "relayReservations", COUNT,
     "Most nodes others cannot dial that may reserve a place with this "
     "one (a reservation costs little until a circuit opens)."),
    ("relay-circuit-bytes", "relayCircuitBytes", BYTES,
     "Most bytes one relayed circuit carries, both ways together: enough "
     "for hours of chat or files of some MiB, not for bulk transfers."),
    ("relay-circuit-time", "relayCircuitTime", SECONDS,
     "Longest a relayed circuit stays open: an hour's session, after which "
     "the ends dial again."),
]

RELAY_FLAGS = [
    ["no-relay", None,
     "Relay circuits for nobody (this node can still reach others through "
     "relays, and be reached through them)."],
]
