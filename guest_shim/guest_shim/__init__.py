"""pyoffload guest shim: the guest's side of the offload channel to its VNIC.

``connect(address)`` opens the channel (``unix:PATH``, ``tcp:127.0.0.1:PORT``
or ``vsock:CID:PORT``; a TCP channel with ``tls=ChannelTls(...)``); ``parse_file``
reads a YAML/JSON rule file into the channel's ``OffloadRequest``. Every failure
raises ``GuestShimError``.
"""

from guest_shim.address import ChannelAddress, parse_address
from guest_shim.client import Channel, connect, default_address
from guest_shim.errors import ChannelAddressError, ChannelTlsError, GuestShimError, RuleFileError
from guest_shim.rulefile import parse_data, parse_file, parse_text
from guest_shim.tls import ChannelTls, tls_from

__version__ = "0.2.0"

__all__ = [
    "Channel",
    "ChannelAddress",
    "ChannelAddressError",
    "ChannelTls",
    "ChannelTlsError",
    "GuestShimError",
    "RuleFileError",
    "connect",
    "default_address",
    "parse_address",
    "parse_data",
    "parse_file",
    "parse_text",
    "tls_from",
]
