"""Rate limiting with real packets: a burst sent back to back through a small
meter; the first packets pass, the rest are dropped and counted.

The meters are two-rate three-colour meters in bytes: with 1,000 bytes/s and
bursts of 500 bytes, two 200-byte frames fit the bucket and the bucket refills
by about a byte per millisecond, so a burst of ten loses most of its tail.
"""

from __future__ import annotations

import ptf.testutils as tu

from ptf_tests.packets import parse, udp
from ptf_tests.vnic_test import GUEST_PORT, UPLINK_PORT, OffloadTest

GUEST, REMOTE = "10.0.0.1", "192.0.2.10"
BURST = 10
METER = "{cir: 1000, cbs: 500, pir: 1000, pbs: 500}"

FLOW_METER = f"""
flows:
  - id: bulk
    match: {{direction: from-guest, protocol: udp}}
    config: {{services: [rate-limit], default_verdict: allow, rate_limit: {METER}}}
"""

RULE_METER = f"""
flows:
  - id: logs
    match: {{direction: from-guest, protocol: udp}}
    config: {{default_verdict: deny}}
    rules:
      - {{id: syslog, match: {{dst_ports: 514}}, verdict: allow, rate_limit: {METER}}}
"""


class RateLimitTest(OffloadTest):
    def burst(self, dport: int) -> None:
        """Sends BURST frames at once: a first run of them passes, the rest are
        dropped and counted as rate-limited."""
        before = self.drops("RATE_LIMIT")
        frames = [udp(GUEST, REMOTE, 40000, dport, payload=bytes([i]) * 158)
                  for i in range(BURST)]
        for frame in frames:
            tu.send_packet(self, GUEST_PORT, frame)
        passed = []
        while (result := tu.dp_poll(self, port_number=UPLINK_PORT, timeout=0.3)) and isinstance(
                result, self.dataplane.PollSuccess):
            passed.append(bytes(parse(bytes(result.packet))))
        self.assertGreaterEqual(len(passed), 1)
        self.assertLess(len(passed), BURST // 2)
        self.assertEqual(passed, [bytes(f) for f in frames[:len(passed)]])
        self.assertEqual(self.drops("RATE_LIMIT") - before, BURST - len(passed))
        tu.verify_no_other_packets(self)


class FlowMeter(RateLimitTest):
    """The flow's meter limits the whole flow."""

    def runTest(self) -> None:
        self.offload(FLOW_METER)
        self.burst(9999)


class RuleMeter(RateLimitTest):
    """A rule's meter limits the packets that rule allows, and only them."""

    def runTest(self) -> None:
        self.offload(RULE_METER)
        self.burst(514)
        self.drop_out(udp(GUEST, REMOTE, 40000, 515))
