"""Everything pyoffload knows about its VNIC pipeline: the compiled artifacts that
ship with the package (``artifacts``) and the names and layouts the control plane
shares with the P4 program."""
