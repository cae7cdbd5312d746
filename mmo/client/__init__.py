"""
The small client library (on Twisted) and the ``mmo-client`` tool.

:func:`connect` logs a player in and fires with a :class:`GameClient`;
an :class:`IClientListener` hears what the player sees.
"""

from .base import ClientConnection
from .protocol import ClientListener, GameClient, IClientListener, LoginFailed, SeenEntity, connect

__all__ = [
    "ClientConnection", "ClientListener", "GameClient", "IClientListener",
    "LoginFailed", "SeenEntity", "connect",
]
