"""The PostgreSQL front door: protocol messages, framing and SQL classification, all free of I/O.

- :mod:`.messages`: one frozen dataclass per protocol message with ``encode``/``decode``;
  :func:`~.messages.decode_frontend`, :func:`~.messages.decode_backend`, :func:`~.messages.decode_startup`.
- :mod:`.framing`: :class:`~.framing.Framer`, fed arbitrary TCP chunks, yields whole frames.
- :mod:`.classify`: :func:`~.classify.classify` SQL text -> ``list[ActionRequest]``.
"""

from enact_proxy.pgwire.classify import SqlParseError, classify
from enact_proxy.pgwire.framing import Framer
from enact_proxy.pgwire.messages import Frame, ProtocolError, decode_backend, decode_frontend, decode_startup

__all__ = [
    "Frame",
    "Framer",
    "ProtocolError",
    "SqlParseError",
    "classify",
    "decode_backend",
    "decode_frontend",
    "decode_startup",
]
