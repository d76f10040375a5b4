"""MLLP (HL7 v2 over TCP, optionally TLS): the ``mllp`` listener and destination, and a client.

Touches: network (through the modules below; importing registers them).

- :mod:`connectors.mllp.listener`: accept, journal, then ACK (listener type ``mllp``);
- :mod:`connectors.mllp.destination`: send and check the ACK (destination type ``mllp``);
- :mod:`connectors.mllp.client`: ``send_messages`` and ``split_file`` for ``eai send``;
- :mod:`connectors.mllp.exposure`: ``eai check`` refuses a listener open to anyone.

Framing (HL7 v2.5.1 Appendix C, MLLP release 1) is in ``_framing``.
"""

from connectors.mllp import exposure as _exposure  # noqa: F401 - registers its eai check
from connectors.mllp._framing import Frame, FrameDecoder, ProtocolError, frame
from connectors.mllp.client import AckSummary, send_messages, split_file
from connectors.mllp.destination import MllpDestination, MllpDestinationConfig
from connectors.mllp.listener import MllpListener, MllpListenerConfig

__all__ = [
    "AckSummary",
    "Frame",
    "FrameDecoder",
    "MllpDestination",
    "MllpDestinationConfig",
    "MllpListener",
    "MllpListenerConfig",
    "ProtocolError",
    "frame",
    "send_messages",
    "split_file",
]
