"""
The PyQt5 monitor (``mmo-monitor``, extra ``gui``).  Only this package
imports Qt; what it shows is computed by the Qt-free :mod:`mmo.monitor`.
"""
