"""mmo: a distributed MMO server on Twisted."""

__version__ = "0.1.0"
