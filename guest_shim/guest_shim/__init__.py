"""pyoffload guest shim: the guest's side of the offload channel to its VNIC."""

__version__ = "0.1.0"
