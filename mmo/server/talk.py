"""
What players say to each other on one node: chat on every channel (and
the commands extensions answer) and who is online.  A part of
:class:`~mmo.server.node.Node` (a mixin), apart for size.
"""

from __future__ import annotations

from typing import Any

from ..interfaces import ICluster, ISession
from ..wire import messages as m
from ..wire.messages import ErrorCode
from ..world.world import World

MAX_CHAT = 500
MAX_WHO = 200


class Talk:
    """Chat and who, for a node (the attributes below are the node's)."""

    sessions: dict[str, ISession]
    world: World
    cluster: ICluster | None
    extensions: Any
    bytes_out: int
    node_id: str
    tick_number: int
    _who_tick: int
    _who_frame: bytes | None

    def chat(self, session: ISession, msg: m.Chat) -> None:
        e = session.entity
        assert e is not None
        text = msg.text.strip()
        if not text:
            return
        if len(text) > MAX_CHAT:
            session.error(ErrorCode.INVALID, f"chat is limited to {MAX_CHAT} characters")
            return
        if text[0] == "/" and msg.channel != m.Channel.WHISPER:
            # A command for the extensions; "//" says a line that starts with "/".
            if not text.startswith("//"):
                self.extensions.command(session, text)
                return
            text = text[1:]
        if msg.channel == m.Channel.WHISPER:
            target = self.sessions.get(msg.target)
            if target is None and not m.valid_name(msg.target):
                session.error(ErrorCode.UNKNOWN_PLAYER, f"no player named {msg.target[:40]!r}")
                return
            if target is None:
                if self.cluster is not None and self.cluster.relay_chat(
                    m.Channel.WHISPER, session.name, e.id, text, "", msg.target
                ):
                    return
                session.error(ErrorCode.UNKNOWN_PLAYER, f"no player named {msg.target!r}")
                return
            target.send(m.ChatMessage(m.Channel.WHISPER, session.name, text))
            if target is not session:
                session.send(m.ChatMessage(m.Channel.WHISPER, f"to {msg.target}", text))
            return
        if msg.channel not in (m.Channel.SAY, m.Channel.ZONE, m.Channel.GLOBAL):
            session.error(ErrorCode.INVALID, f"unknown chat channel {msg.channel}")
            return
        zone = e.zone.name if e.zone else ""
        self.deliver_chat(msg.channel, session.name, text, zone, e)
        if self.cluster is not None:
            self.cluster.relay_chat(msg.channel, session.name, e.id, text, zone, "")

    def deliver_chat(
        self, channel: int, sender: str, text: str, zone: str, near: Any = None,
    ) -> None:
        """Give a chat line to the local players who should hear it."""
        frame = m.ChatMessage(channel, sender, text).encode()
        if channel == m.Channel.SAY and near is not None:
            hearers = [self.world.entities.get(eid) for eid in near.viewer.visible] \
                if near.viewer is not None else self._seers(near)
            hearers.append(near)
            sessions = [self.sessions.get(h.name) for h in hearers
                        if h is not None and h.viewer is not None]
        elif channel == m.Channel.ZONE:
            sessions = [s for s in self.sessions.values()
                        if s.entity is not None and s.entity.zone is not None
                        and s.entity.zone.name == zone]
        else:
            sessions = list(self.sessions.values())
        for s in sessions:
            # A reader that is not draining gets no chat (its output stays
            # bounded); it gets a full view again once it drains.
            if s is not None:
                self.bytes_out += s.write(frame)

    def _seers(self, e: Any) -> list[Any]:
        """The local players who see ``e`` (a mirror, which sees nothing itself)."""
        zone = e.zone
        if zone is None:
            return []
        return [p for key in zone.neighbours(e.cell) for p in zone.cells.get(key, {}).values()
                if p.viewer is not None and e.id in p.viewer.visible]

    def who(self, session: ISession) -> None:
        """Who is online: the reply is built at most once per tick and shared."""
        if self._who_tick != self.tick_number or self._who_frame is None:
            players = sorted(
                (e.name, e.zone.name if e.zone else "", e.owner or self.node_id)
                for e in self.world.players())
            self._who_frame = m.WhoReply(len(players), tuple(players[:MAX_WHO])).encode()
            self._who_tick = self.tick_number
        self.bytes_out += session.write(self._who_frame)
