from twisted.application.service import ServiceMaker

p2p = ServiceMaker(
    "p2poverlay",
    "p2poverlay.tap",
    "A decentralized peer-to-peer overlay node",
    "p2p",
)
