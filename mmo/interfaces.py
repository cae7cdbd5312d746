"""
The seams of a node, in one place.

The node (:mod:`mmo.server`) holds the game rules and the tick.  The
cluster (:mod:`mmo.cluster`), the store (:mod:`mmo.store`) and the game
extensions (:mod:`mmo.plugins` and third-party dropins) never import it,
and it never imports them: each side sees the other only through the
interfaces below, and ``makeService`` (:mod:`mmo.app`) wires them.

- :class:`IGame` is what the cluster, the store and extensions see of a node.
- :class:`IPlayer` is a logged-in player as they see it.
- :class:`ICluster` is what the node asks of the cluster each tick.
- :class:`IAccountStore` is what the node asks of the store at login and logout.
- :class:`INumbers` is anything whose counters go into the node's snapshot.
- :class:`ISession` is what the node asks of a player's connection.
- :class:`IClusterTransport` is how the cluster moves datagrams (multicast,
  Redis, memory).
- :class:`IExtension` and :class:`IExtensionMaker` are game extensions.
"""

from __future__ import annotations

from twisted.internet.defer import Deferred
from zope.interface import Attribute, Interface

from .wire.messages import Message

# -- errors that cross a seam ---------------------------------------------------------


class SentElsewhere(Exception):
    """A login that belongs on another node: ``redirect`` (a message) says where."""

    def __init__(self, redirect: object) -> None:
        super().__init__("sent to another node")
        self.redirect = redirect


class LoginRefused(Exception):
    """A login is refused; ``code`` is the protocol's error code."""

    def __init__(self, code: int, text: str) -> None:
        super().__init__(text)
        self.code = code
        self.text = text


# -- the node, as the others see it ---------------------------------------------------


class IPlayer(Interface):
    """A player in this node's world, as extensions, the cluster and the store see it."""

    name = Attribute("The account name.")
    entity = Attribute("Its :class:`~mmo.world.grid.Entity` (id, zone, x, y, data).")
    zone = Attribute("Its :class:`~mmo.world.grid.Zone`.")
    x = Attribute("Its position.")
    y = Attribute("Its position.")
    data = Attribute(
        "Its key/value record, saved with its position (on logout, periodically "
        "and at shutdown) and given back at its next login; JSON-friendly values.")

    def record(namespace: str) -> dict:
        """The part of :attr:`data` kept under ``namespace`` (made if missing)."""

    def state() -> dict:
        """What is saved of it: ``{"zone", "x", "y", "data"}``."""

    def tell(text: str) -> None:
        """Send it a ``SYSTEM`` chat line."""

    def send(message: Message) -> None:
        """Send it one protocol message (:mod:`mmo.wire.messages`)."""

    def error(code: int, text: str) -> None:
        """Tell it a request was refused (an ``Error`` frame); the session goes on."""


class IGame(Interface):
    """A node's world and players, as the cluster, the store and extensions see them."""

    node_id = Attribute("This node's id in the cluster.")
    world = Attribute("The :class:`~mmo.world.world.World` (zones, grid, entities).")
    clock = Attribute("An ``IReactorTime``: the reactor, or a ``Clock`` in tests.")
    rng = Attribute("The node's ``random.Random``.")
    tick_number = Attribute("Ticks run so far.")
    tick_rate = Attribute("Configured ticks per second.")

    def player(name: str) -> IPlayer | None:
        """The logged-in player called ``name``, if it is on this node."""

    def players() -> list:
        """Every logged-in player of this node (a new list)."""

    def is_playing(name: str) -> bool:
        """Whether a player called ``name`` is logged in here."""

    def deliver_chat(channel: int, sender: str, text: str, zone: str,
                     near: object = None) -> None:
        """
        Give a chat line to the local players who should hear it: for ``SAY``,
        those who see the entity ``near``; for ``ZONE``, those in ``zone``;
        for ``GLOBAL``, everyone.
        """

    def handoff_received(from_node: str, handoff: object) -> None:
        """
        ``from_node`` hands this node a player (:class:`mmo.cluster.codec.Handoff`):
        keep it in the world until its client arrives with its token.
        """

    def published(zone: str, cell: int) -> bool:
        """Whether other nodes' players may see cell ``cell`` of ``zone`` (publish it)."""

    def nodes_changed(live: frozenset) -> None:
        """
        The live nodes of the cluster (this one included) are now ``live``:
        regions are owned among them from now on.
        """

    def owned_cells() -> frozenset:
        """
        The ``(zone, cell)`` this node follows because it owns them (the
        cells of its regions, where another node's ``Handoff`` may land),
        whether or not its players see them; asked again after each
        :meth:`nodes_changed`.  Empty when players are placed by connection.
        """

    def resumed_elsewhere(name: str, nonce: bytes, expires: float) -> None:
        """
        ``name`` came back on another node with the resume token ``nonce``:
        the token is spent here too, and a session of ``name`` this node
        still has is closed (the newest login wins).
        """

    def commands() -> dict:
        """The chat commands the enabled extensions answer: name -> help text."""

    def snapshot() -> dict:
        """The node's numbers now (metrics)."""


class INumbers(Interface):
    """A part of a node whose counters belong in its snapshot (metrics)."""

    def numbers() -> dict:
        """Counters and gauges now, by name."""


class ICluster(INumbers):
    """What a node asks of the cluster that shares its world."""

    def ticked(tick: int) -> None:
        """
        Once per tick, after the grid settled and the players got their
        updates, before the tick's records are cleared: publish the owned
        changes, follow the cells the players see.
        """

    def relay_chat(channel: int, sender: str, entity_id: int, text: str, zone: str,
                   target: str) -> bool:
        """
        Send a chat line to the other nodes; for a whisper to a player this
        node does not have, ``True`` when it went out (the receipt or its
        absence tells the sender later).
        """

    def resumed(name: str, nonce: bytes, expires: float) -> None:
        """Tell the other nodes that ``name`` came back here with token ``nonce``."""

    def hand_off(entity: object, to_node: str, data: bytes | None) -> None:
        """
        Hand this node's player ``entity`` (its session gone) to ``to_node``,
        with its extensions' record ``data`` (JSON, or ``None`` if saved to
        the store instead); the entity stays, published, until ``to_node``
        publishes the player, then stands for theirs (watchers see no change).
        """

    def take_over(name: str) -> object:
        """The mirror of player ``name`` made this node's own entity, or ``None``."""

    def forget_handoff(name: str) -> None:
        """Stop waiting for ``name`` to appear on the node it was handed to."""

    def player_door(node_id: str) -> tuple | None:
        """
        Where players reach the node ``node_id`` (from its heartbeats):
        ``(address, TCP port, WebSocket port or 0)``, or ``None`` if unknown.
        """

    def locate(name: str) -> Deferred:
        """
        A ``Deferred`` firing with the freshest ``(seconds, zone, x, y)`` any
        node knows of the player ``name`` (asking the others briefly), or None.
        """

    def whereabouts(name: str) -> tuple | None:
        """
        The last position the cluster told this node of the player ``name``
        on another node: ``(seconds, zone, x, y)`` (when it was heard), or
        ``None``.
        """


class IAccountStore(Interface):
    """Accounts and the players' saved state."""

    def authenticate(name: str, password: str, create: bool) -> Deferred:
        """
        A ``Deferred`` firing with the account for ``name`` (with ``.name``
        and ``.state``) if ``password`` is right, creating it when unknown
        and ``create`` is true; failing with :class:`LoginRefused` otherwise.
        """

    def resume(name: str) -> Deferred:
        """
        A ``Deferred`` firing with the account for ``name`` and its saved
        state, with no password: the player proved who it is with a resume
        token, which also makes this the newest login (a claim another node
        holds is taken over).  A name this store does not know gets an empty
        state (its account lives in another node's store); ``saved_at`` on
        the account says when its state was saved (Unix seconds), if it was.
        """

    def save_state(name: str, state: dict) -> Deferred:
        """Store a player's state; a ``Deferred`` that fires when it is stored."""


# -- a player's connection ---------------------------------------------------------------


class ISession(Interface):
    """
    One player's connection, as the node drives it.  The session owns its
    transport and everything written to it; the node never writes to a
    socket itself.
    """

    peer = Attribute("The client's address (host), for per-address limits and logs.")
    name = Attribute("The player's name once logged in, else ``''``.")
    entity = Attribute("The player's entity while in the world, else ``None``.")
    live = Attribute(
        "True while the session is in play, not closing and draining its output: "
        "only then does it get updates and chat.")
    ended = Attribute("True once the session is closing or closed.")

    def send(message: Message) -> None:
        """Encode and send one message (unless the session has ended)."""

    def write(data: bytes) -> int:
        """Send pre-encoded frames if the session is live; the bytes sent (0 if not)."""

    def write_update(data: bytes) -> None:
        """The tick's one write to a live session (the fast path to the socket)."""

    def error(code: int, text: str) -> None:
        """An ``Error`` frame; the session goes on."""

    def correct(seq: int, reason: int, now: float) -> None:
        """A refused move: tell the client where it is (once per burst of refusals)."""

    def refuse(code: int, text: str, abort: bool = False) -> None:
        """An ``Error`` frame, then close (``abort``: without waiting to drain)."""

    def close(abort: bool = False) -> None:
        """Close the connection."""

    def sweep(now: float) -> None:
        """Enforce the session's own time limits (login, idle, stuck reader)."""


# -- the cluster's transport ---------------------------------------------------------------


class IClusterTransport(Interface):
    """
    Moves the cluster's datagrams: multicast groups, Redis channels, or
    memory in tests.  Groups are named by the multicast address they have
    on multicast (``"239.255.0.1"``); another transport maps that name to
    its own (a channel).  Datagrams may be lost; they are never changed.
    """

    def start(receive: object, connected: object = None) -> object:
        """
        Start; every datagram of a joined group is then given to
        ``receive(data, source)``.  ``connected()``, when given, is called
        each time a transport that was not connected when ``start``
        returned, or that lost its connection, reaches the other nodes
        (again): what was sent meanwhile is lost, so the cluster announces
        itself and asks for keyframes.  May return a ``Deferred``.
        """

    def trouble() -> str | None:
        """
        Why the transport cannot reach the other nodes now (one line, for
        ``/readyz`` and the logs), or ``None`` while it can.
        """

    def stop() -> object:
        """Leave every group and stop; may return a ``Deferred``."""

    def join(group: str) -> None:
        """Receive the datagrams sent to ``group`` from now on."""

    def leave(group: str) -> None:
        """Stop receiving ``group``."""

    def send(group: str, data: bytes) -> bool:
        """Send ``data`` to ``group``; ``False`` if it could not be handed on."""


# -- game extensions -----------------------------------------------------------------------


class IExtension(Interface):
    """
    Game logic run inside a node.

    Every hook runs on the reactor thread, inside the tick or a player's
    request: it must not block (use ``deferToThread`` for slow work).  A
    hook that raises is logged and skipped.
    """

    name = Attribute("Short unique name, the one the ``extension`` config key uses.")
    commands = Attribute(
        "Mapping of the chat commands this extension answers (a name without "
        "the slash, lower case) to a one-line help text; may be empty.")

    def start(game: IGame) -> None:
        """The extension is enabled on a node; keep ``game``, spawn NPCs, ..."""

    def stop() -> None:
        """The node is stopping (its players have been saved)."""

    def login(player: IPlayer) -> None:
        """``player`` entered the world; its saved record is in ``player.data``."""

    def logout(player: IPlayer) -> None:
        """``player`` leaves; what is written to ``player.data`` now is saved."""

    def moved(player: IPlayer) -> None:
        """``player`` made an accepted move (its position is ``player.x, player.y``)."""

    def command(player: IPlayer, name: str, args: str) -> None:
        """``player`` typed ``/name args``; ``name`` is one of :attr:`commands`."""

    def tick(number: int) -> None:
        """Once per tick, before the grid settles: moves made now are seen this tick."""


class IExtensionMaker(Interface):
    """A plugin object that makes a node's :class:`IExtension`."""

    name = Attribute("The extension's name in the ``extension`` config key.")
    description = Attribute("One line saying what the extension does.")
    keys = Attribute(
        "The configuration keys (:class:`mmo.config.Key`) the extension adds to "
        "the node's (flags and TOML keys); may be empty.")

    def configure(values: dict) -> object:
        """
        The extension's own settings from the node's checked values (its
        keys and the node's); raise :class:`mmo.config.ConfigError` when they
        do not fit together.  ``None`` for an extension with no keys.
        """

    def extension(settings: object) -> IExtension:
        """A new extension object with its ``settings`` (one per node)."""
