"""
The monitor's Qt-free half: what the cluster looks like, computed from its
datagrams (:mod:`.model`), how to present it (:mod:`.present`), the
multicast listener (:mod:`.listener`) and the text view (:mod:`.text`).

Nothing here imports Qt, so the text view runs where PyQt5 is not installed.
"""
