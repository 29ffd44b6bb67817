"""Test hosts for the demo and ``pyoffload up``'s playground: veth pairs, network
namespaces (``topology``) and real kernel traffic between them (``traffic``)."""
