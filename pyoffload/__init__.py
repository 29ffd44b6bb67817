"""pyoffload: offload a guest's stateful network services into its VNIC's P4 pipeline."""

__version__ = "0.2.0"
