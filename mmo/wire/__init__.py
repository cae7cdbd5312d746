"""The client protocol: frames and messages, with no I/O."""

from .frames import DEFAULT_MAX_FRAME, FrameDecoder, decode_all
from .messages import *  # noqa: F403
from .messages import PROTOCOL_VERSION, ErrorCode, Message, ProtocolError

__all__ = [
    "DEFAULT_MAX_FRAME", "FrameDecoder", "decode_all", "PROTOCOL_VERSION",
    "ErrorCode", "Message", "ProtocolError",
]
