"""
Chat across nodes: say, zone and global lines go to every node on the
control group; a whisper to a player this node does not have goes there
too, and the node that has the player answers with a receipt (no receipt
within :data:`WHISPER_TIMEOUT` seconds: the whisperer is told there is no
such player).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.interfaces import IDelayedCall, IReactorTime

from ..interfaces import IGame
from ..wire import messages as m
from ..wire.messages import Channel, ErrorCode
from .codec import CHAT, WHISPER_RECEIPT, ChatLine, WhisperReceipt
from .mirrors import MirrorTable

WHISPER_TIMEOUT = 1.0
#: Whispers waiting for a receipt; more are refused rather than queued.
MAX_PENDING = 1024


class ClusterChat:
    """Relays a node's chat to the cluster and delivers the cluster's chat."""

    def __init__(
        self, game: IGame, mirrors: MirrorTable, clock: IReactorTime,
        send: Callable[[int, Callable[[int], bytes]], None],
    ) -> None:
        self.game = game
        self.mirrors = mirrors
        self.clock = clock
        #: ``send(kind, body_for_room)`` puts a datagram on the control group.
        self.send = send
        self.pending: dict[int, tuple[str, str, str, IDelayedCall]] = {}
        self._token = 0
        self.relayed = 0
        self.delivered = 0

    def relay(self, channel: int, sender: str, entity_id: int, text: str, zone: str,
              target: str) -> bool:
        """A local player's chat line for the cluster; ``True`` when a whisper went out."""
        if channel == Channel.WHISPER:
            if not self.mirrors.nodes or not target or len(self.pending) >= MAX_PENDING:
                return False
            self._token = (self._token + 1) & 0xFFFFFFFF
            token = self._token
            timer = self.clock.callLater(WHISPER_TIMEOUT, self._unanswered, token)
            self.pending[token] = (sender, target, text, timer)
            line = ChatLine(channel, 0, token, "", sender, target, text)
        else:
            line = ChatLine(channel, entity_id, 0, zone or "", sender, "", text)
        self.relayed += 1
        self.send(CHAT, line.body)
        return True

    def _unanswered(self, token: int) -> None:
        entry = self.pending.pop(token, None)
        if entry is None:
            return
        sender, target, _text, _timer = entry
        player = self.game.player(sender)
        if player is not None:
            player.error(ErrorCode.UNKNOWN_PLAYER, f"no player named {target!r}")

    def chat_received(self, origin: str, line: ChatLine) -> None:
        game = self.game
        if line.channel == Channel.WHISPER:
            player = game.player(line.target)
            if player is None:
                return
            player.send(m.ChatMessage(Channel.WHISPER, line.sender, line.text))
            self.delivered += 1
            receipt = WhisperReceipt(line.token, origin, line.sender, line.target)
            self.send(WHISPER_RECEIPT, lambda room: receipt.body())
            return
        if line.channel == Channel.SAY:
            near = self.mirrors.find(origin, line.entity_id)
            if near is None:
                return
            game.deliver_chat(Channel.SAY, line.sender, line.text, line.zone, near)
        elif line.channel in (Channel.ZONE, Channel.GLOBAL):
            game.deliver_chat(line.channel, line.sender, line.text, line.zone)
        else:
            return
        self.delivered += 1

    def receipt_received(self, my_id: str, receipt: WhisperReceipt) -> None:
        if receipt.origin != my_id:
            return
        entry = self.pending.pop(receipt.token, None)
        if entry is None:
            return
        sender, target, text, timer = entry
        if timer.active():
            timer.cancel()
        player = self.game.player(sender)
        if player is not None:
            player.send(m.ChatMessage(Channel.WHISPER, f"to {target}", text))

    def stop(self) -> None:
        for *_rest, timer in self.pending.values():
            if timer.active():
                timer.cancel()
        self.pending.clear()

    def numbers(self) -> dict[str, Any]:
        return {"chat_relayed": self.relayed, "chat_delivered": self.delivered}
