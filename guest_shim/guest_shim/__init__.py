"""pyoffload guest shim: the guest's side of the offload channel to its VNIC.

``connect(address)`` opens the channel (``unix:PATH``, ``tcp:127.0.0.1:PORT``
or ``vsock:CID:PORT``); ``parse_file`` reads a YAML/JSON rule file into the
channel's ``OffloadRequest``. Every failure raises ``GuestShimError``.
"""

from guest_shim.address import ChannelAddress, parse_address
from guest_shim.client import Channel, connect, default_address
from guest_shim.errors import ChannelAddressError, GuestShimError, RuleFileError
from guest_shim.rulefile import parse_data, parse_file, parse_text

__version__ = "0.1.0"

__all__ = [
    "Channel",
    "ChannelAddress",
    "ChannelAddressError",
    "GuestShimError",
    "RuleFileError",
    "connect",
    "default_address",
    "parse_address",
    "parse_data",
    "parse_file",
    "parse_text",
]
