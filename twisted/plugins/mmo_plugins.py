"""twistd dropins: ``twistd mmo`` and ``twistd mmo-loadgen``."""

from twisted.application.service import ServiceMaker

mmo = ServiceMaker(
    "mmo", "mmo.app.tap", "Run a node of the mmo cluster.", "mmo")
mmo_loadgen = ServiceMaker(
    "mmo-loadgen", "mmo.loadgen.tap", "Drive simulated players at mmo nodes.",
    "mmo-loadgen")
