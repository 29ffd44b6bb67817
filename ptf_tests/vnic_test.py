"""Pipeline layer of the packet tests: helpers named after VNIC operations.

Names of tables, actions and fields are those of the P4Info; numbers
(directions, policies, verdicts) come from the compiled constants of
``p4src/include/defines.p4``, never typed in twice.
"""

from __future__ import annotations

from finsy import P4TableAction, P4TableEntry, P4TableMatch

from ptf_tests.p4runtime_test import P4RuntimeTest
from pyoffload.p4artifacts import load_constants

CONST = load_constants()

GUEST_PORT = 1
UPLINK_PORT = 2
OTHER_GUEST_PORT = 3
UNMAPPED_PORT = 4


class VnicTest(P4RuntimeTest):
    """Adds VNICs (a guest port and its uplink) to the port map."""

    def map_port(
        self, port: int, *, vnic_id: int, direction: int, peer_port: int, policy: str = "ALLOW"
    ) -> None:
        self.insert(
            P4TableEntry(
                "vnic.port_map",
                match=P4TableMatch(port=port),
                action=P4TableAction(
                    "vnic.set_vnic",
                    vnic_id=vnic_id,
                    direction=direction,
                    peer_port=peer_port,
                    default_policy=CONST[f"POLICY_{policy}"],
                ),
            )
        )

    def add_vnic(
        self,
        vnic_id: int,
        *,
        guest_port: int = GUEST_PORT,
        uplink_port: int = UPLINK_PORT,
        policy: str = "ALLOW",
    ) -> None:
        """A VNIC between ``guest_port`` (its VM) and ``uplink_port`` (the network)."""
        self.map_port(
            guest_port,
            vnic_id=vnic_id,
            direction=CONST["DIR_FROM_GUEST"],
            peer_port=uplink_port,
            policy=policy,
        )
        self.map_port(
            uplink_port,
            vnic_id=vnic_id,
            direction=CONST["DIR_TO_GUEST"],
            peer_port=guest_port,
            policy=policy,
        )
