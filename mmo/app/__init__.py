"""
The node process's entry points: ``twistd mmo`` (:mod:`.tap`), the service
that wires the node, its store, its cluster and its extensions together
(:mod:`.service`), and its operations side: HTTP ``/metrics`` and health
(:mod:`.web`, :mod:`.metrics`) and systemd notifications (:mod:`.systemd`).
"""
