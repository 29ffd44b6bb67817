"""P4Runtime server of the embedded target: P4Info index (``p4info``), value codec
(``codec``), gRPC service (``service``) and server (``server``).

Nothing is imported here: the switch uses ``packet_io`` and ``errors`` without
pulling in the server, which itself is built on the switch.
"""
