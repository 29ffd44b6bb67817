"""One guest cannot hold another back, nor cost the agent more than its own limits.

* Each VNIC's applies are serialised on their own: a neighbour's large apply in flight
  does not hold a guest's single-rule applies back (no agent-wide lock).
* Applies of two VNICs at the same time never get the same number from the shared pool,
  and leave the target exactly as desired (read back).
* A neighbour that applies without pause does not stop the repair of drift, and the
  repair of one VNIC's entries holds back only that VNIC's applies; what an apply in
  flight has half-way on the target is never taken for drift.
* A guest's calls are rate limited before their body is decoded; a body that does not
  decode is refused with INVALID_ARGUMENT and changes nothing.

A real embedded target, a real agent and real Unix-socket channels; plus the gate, the
reservation and the rate limit alone.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import grpc
import pytest
from finsy.proto import p4r
from guest_shim.client import Channel
from guest_shim.errors import GuestShimError
from guest_shim.service import method_path

from pyoffload.agent import Agent
from pyoffload.agent.ratelimit import RateLimit
from pyoffload.compiler import Reservation, ResourcePool
from pyoffload.gate import Gate
from pyoffload.pipeline import names
from pyoffload.rules import load_data, to_proto
from pyoffload.targets import RunningTarget
from tests.agent.test_agent import read_table
from tests.agent.test_channel_security import start_agent, vnic

__all__ = ["start_agent"]  # fixture used here


def rules_request(flow: str, rules: int, port: int = 10_000) -> dict[str, Any]:
    """One flow of ``rules`` one-port UDP allow rules, from ``port`` on."""
    return {"flows": [{"id": flow, "match": {"direction": "from-guest", "protocol": "udp"},
                       "config": {"services": ["count"], "default_verdict": "deny"},
                       "rules": [{"id": f"r{i}", "match": {"dst_ports": port + i},
                                  "verdict": "allow"} for i in range(rules)]}]}


def two_vnics(tmp_path: Path, **limits: Any) -> list[dict[str, Any]]:
    return [vnic("web-1", 1, f"unix:{tmp_path}/web-1.sock", quotas={"rules": 8},
                 channel_limits=limits or None),
            vnic("db-1", 2, f"unix:{tmp_path}/db-1.sock", quotas={"rules": 8000})]


def test_a_neighbours_large_apply_does_not_hold_a_guest_back(start_agent: Any,
                                                            tmp_path: Path) -> None:
    agent, _servers = start_agent(two_vnics(tmp_path))
    big = to_proto(load_data(rules_request("bulk", 6000)))
    answers: list[int] = []

    def neighbour() -> None:
        with Channel(f"unix:{tmp_path}/db-1.sock", timeout=120) as guest:
            answers.append(guest.apply(big).generation)

    thread = threading.Thread(target=neighbour)
    thread.start()
    deadline = time.monotonic() + 60
    while "db-1" not in agent._in_flight and time.monotonic() < deadline:
        time.sleep(0.001)
    assert "db-1" in agent._in_flight, "the neighbour's apply never reached the target"
    during = 0
    with Channel(f"unix:{tmp_path}/web-1.sock", timeout=30) as guest:
        for port in range(20):
            reply = guest.apply(to_proto(load_data(rules_request("one", 1, 80 + port))))
            if "db-1" in agent._in_flight:
                during += 1
            else:
                break
        told = reply.generation
    thread.join(120)
    print(f"single-rule applies done while the neighbour's 6,000-rule apply was in flight: "
          f"{during}")
    assert during >= 2, "the guest's applies waited for the neighbour's"
    assert answers == [1]
    assert agent.state("web-1").generation == told
    assert len(read_table_for(agent, 2)) == 6000 and len(read_table_for(agent, 1)) == 1


def read_table_for(agent: Agent, vnic_id: int) -> list[p4r.Entity]:
    """The ACL entries of one VNIC, read from the target."""
    schema = agent.schema
    table = schema.tables[names.ACL]
    field = next(f.id for f in table.match_fields if f.name.endswith("vnic_id"))
    found = agent.with_client(lambda client: client.read(
        [p4r.Entity(table_entry=p4r.TableEntry(table_id=table.id))]))
    return [e for e in found if any(
        m.field_id == field and int.from_bytes(m.exact.value, "big") == vnic_id
        for m in e.table_entry.match)]


def test_concurrent_applies_never_share_a_number(start_agent: Any, tmp_path: Path) -> None:
    """Two VNICs apply at the same time, each round with new flow ids (new numbers): no
    number is handed to both, and the target holds exactly what both were told."""
    agent, _servers = start_agent(two_vnics(tmp_path))
    errors: list[BaseException] = []

    def guest(name: str, rounds: int) -> None:
        try:
            for round_ in range(rounds):
                flows = [rules_request(f"f{round_}-{i}", 1, 1000 + i)["flows"][0]
                         for i in range(3)]
                agent.apply(name, load_data({"flows": flows}))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=guest, args=(name, 15)) for name in ("web-1", "db-1")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors, errors
    numbers = {name: set(agent.state(name).compiled.flow_ids.values())
               for name in ("web-1", "db-1")}
    assert all(len(held) == 3 for held in numbers.values())
    assert not numbers["web-1"] & numbers["db-1"]
    for name, held in numbers.items():
        assert {row[-1] for row in agent._pool.holdings(name)["flows"]} == held
    assert agent.reconcile() == 0, "the target differs from what the guests were told"


def test_applies_that_fit_one_after_the_other_never_fail_together(start_agent: Any,
                                                                  tmp_path: Path) -> None:
    """Two VNICs replace 5,000 rules with 5,000 others at the same time: each holds its
    old and new entries at once on the way (20,000 > the ACL's 16,384), so one waits for
    the other to land; both are applied, and the target holds exactly the new rules."""
    agent, _servers = start_agent([
        vnic("web-1", 1, f"unix:{tmp_path}/web-1.sock", quotas={"rules": 6000}),
        vnic("db-1", 2, f"unix:{tmp_path}/db-1.sock", quotas={"rules": 6000})])
    for name in ("web-1", "db-1"):
        agent.apply(name, load_data(rules_request("bulk", 5000, 10_000)))
    errors: list[BaseException] = []

    def replace(name: str) -> None:
        try:
            agent.apply(name, load_data(rules_request("bulk", 5000, 30_000)))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=replace, args=(name,)) for name in ("web-1", "db-1")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors, errors
    assert [agent.state(name).generation for name in ("web-1", "db-1")] == [2, 2]
    assert len(read_table_for(agent, 1)) == len(read_table_for(agent, 2)) == 5000
    assert agent.reconcile() == 0


def test_drift_is_repaired_while_a_neighbour_applies_without_pause(
        start_agent: Any, target: RunningTarget, tmp_path: Path) -> None:
    agent, _servers = start_agent(two_vnics(tmp_path))
    agent.apply("web-1", load_data(rules_request("one", 1)))
    stop = threading.Event()
    applied = [0]

    def neighbour() -> None:
        port = 0
        while not stop.is_set():
            port = (port + 1) % 2
            agent.apply("db-1", load_data(rules_request("bulk", 300, 20_000 + port)))
            applied[0] += 1

    thread = threading.Thread(target=neighbour)
    thread.start()
    try:
        while applied[0] < 2:
            time.sleep(0.01)
        [entry] = read_table_for(agent, 1)
        agent.with_client(lambda client: client.write(  # behind the agent's back
            [p4r.Update(type=p4r.Update.DELETE, entity=entry)]))
        assert read_table_for(agent, 1) == []
        assert agent.reconcile() >= 1
        assert len(read_table_for(agent, 1)) == 1
    finally:
        stop.set()
        thread.join(60)
    assert applied[0] >= 2
    assert len(read_table(target, names.ACL)) == 301


def test_a_repair_holds_back_only_the_vnic_it_repairs(start_agent: Any,
                                                     tmp_path: Path) -> None:
    """Drift in web-1's entries is repaired while db-1 has an apply in flight (its
    share of the gate held): the repair neither waits for it nor stops it."""
    agent, _servers = start_agent(two_vnics(tmp_path))
    agent.apply("web-1", load_data(rules_request("one", 1)))
    agent.apply("db-1", load_data(rules_request("bulk", 20)))
    [entry] = read_table_for(agent, 1)
    agent.with_client(lambda client: client.write(  # behind the agent's back
        [p4r.Update(type=p4r.Update.DELETE, entity=entry)]))
    with agent.gate.shared("db-1"):  # db-1's apply in flight
        assert _within(10, agent.reconcile) == 1
        assert len(read_table_for(agent, 1)) == 1
        with agent.gate.shared("db-1"):  # db-1 may still start applies meanwhile
            pass
    assert agent.target_status().repairs_by_owner == {"web-1": 1}
    assert agent.reconcile() == 0


def test_entries_no_vnic_claims_are_removed_with_every_apply_held_back(
        start_agent: Any, tmp_path: Path) -> None:
    """An entry with the id of no VNIC of this host may be nobody's: it is removed only
    once no apply is in flight (after a patient wait), then nothing is left of it."""
    agent, _servers = start_agent(two_vnics(tmp_path))
    agent.apply("web-1", load_data(rules_request("one", 1)))
    [entry] = read_table_for(agent, 1)
    table = agent.schema.tables[names.ACL]
    field = next(f.id for f in table.match_fields if f.name.endswith("vnic_id"))
    stray = p4r.Entity()
    stray.CopyFrom(entry)
    for match in stray.table_entry.match:
        if match.field_id == field:
            match.exact.value = (77).to_bytes(len(match.exact.value) or 1, "big")
    agent.with_client(lambda client: client.write(
        [p4r.Update(type=p4r.Update.INSERT, entity=stray)]))
    assert agent.claim(stray) is None and agent.claim(entry) == "web-1"
    result: list[int] = []
    with agent.gate.shared("db-1"):
        repair = threading.Thread(target=lambda: result.append(agent.reconcile()))
        repair.start()
        repair.join(1.5)  # past its patience: it waits for db-1's apply to end
        assert repair.is_alive() and result == []
        assert len(read_table_for(agent, 77)) == 1
    repair.join(10)
    assert result == [1] and read_table_for(agent, 77) == []
    assert len(read_table_for(agent, 1)) == 1


def test_reconciling_while_guests_apply_repairs_nothing(start_agent: Any,
                                                        tmp_path: Path) -> None:
    """Two guests apply without pause, each round with new flows (new meter, member and
    group numbers from the shared pool), while the target is read back and reconciled
    over and over: what an apply has half-way is never taken for drift (nothing is
    written), and at the end the target is exactly what the guests were told."""
    agent, _servers = start_agent([
        vnic("web-1", 1, f"unix:{tmp_path}/web-1.sock", quotas={"rules": 200}),
        vnic("db-1", 2, f"unix:{tmp_path}/db-1.sock", quotas={"rules": 200})])
    stop = threading.Event()
    errors: list[BaseException] = []
    rounds = dict.fromkeys(("web-1", "db-1"), 0)

    def guest(name: str) -> None:
        try:
            while not stop.is_set():
                n = rounds[name]
                agent.apply(name, load_data({"flows": [
                    _metered_flow(f"m{n}", 60 + n % 2),
                    _balanced_flow(f"lb{n}", 8000 + n % 50)]}))
                rounds[name] += 1
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=guest, args=(name,)) for name in rounds]
    for thread in threads:
        thread.start()
    written, reconciles = 0, 0
    try:
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline and not errors:
            written += agent.reconcile()
            reconciles += 1
    finally:
        stop.set()
        for thread in threads:
            thread.join(60)
    assert not errors, errors
    print(f"{reconciles} reconciliations during {sum(rounds.values())} applies: "
          f"{written} updates written")
    assert reconciles >= 5 and min(rounds.values()) >= 5
    assert written == 0, "entries of an apply in flight were taken for drift"
    assert agent.reconcile() == 0
    assert len(read_table_for(agent, 1)) == len(read_table_for(agent, 2)) == 1


def _metered_flow(flow: str, port: int) -> dict[str, Any]:
    return {"id": flow, "match": {"direction": "from-guest", "protocol": "tcp"},
            "config": {"services": ["conntrack", "rate-limit", "count"],
                       "default_verdict": "allow-track",
                       "rate_limit": {"cir": 1_000_000, "cbs": 100_000}},
            "rules": [{"id": "r", "match": {"ct_state": "new", "dst_ports": port},
                       "verdict": "allow-track", "rate_limit": {"cir": 500_000,
                                                                 "cbs": 50_000}}]}


def _balanced_flow(flow: str, port: int) -> dict[str, Any]:
    return {"id": flow, "match": {"direction": "to-guest", "protocol": "tcp",
                                  "dst": "198.51.100.80", "dst_ports": port},
            "config": {"services": ["conntrack", "lb", "count"],
                       "default_verdict": "allow-track"},
            "rules": [{"id": "pool", "load_balance": {
                "vip": "198.51.100.80", "port": port, "protocol": "tcp",
                "backends": [{"address": "10.2.0.11", "port": 8080, "weight": 2},
                             {"address": "10.2.0.12", "port": 8080}]}}]}


def _within(seconds: float, call: Any) -> Any:
    """``call()``'s answer, failing the test when it takes longer than ``seconds``."""
    answer: list[Any] = []
    thread = threading.Thread(target=lambda: answer.append(call()), daemon=True)
    thread.start()
    thread.join(seconds)
    assert answer, f"still waiting after {seconds} s"
    return answer[0]


def test_undecodable_bodies_are_refused_and_change_nothing(start_agent: Any,
                                                          tmp_path: Path) -> None:
    agent, _servers = start_agent(two_vnics(tmp_path))
    with Channel(f"unix:{tmp_path}/web-1.sock", timeout=10) as guest:
        assert guest.apply(to_proto(load_data(rules_request("one", 1)))).generation == 1
    with grpc.insecure_channel(f"unix:{tmp_path}/web-1.sock") as channel:
        for method in ("Apply", "Withdraw", "Get", "Stats"):
            call = channel.unary_unary(method_path(method), None, None)
            with pytest.raises(grpc.RpcError) as info:
                call(b"\xff\xff\xff\xff", timeout=10)
            assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, method
            assert "not a message of this protocol" in (info.value.details() or "")
    assert agent.state("web-1").generation == 1
    assert len(read_table_for(agent, 1)) == 1


def test_a_guest_over_its_rate_is_refused_before_decoding(start_agent: Any,
                                                          tmp_path: Path) -> None:
    agent, _servers = start_agent(two_vnics(tmp_path, requests_per_second=0.5,
                                            request_burst=3))
    with Channel(f"unix:{tmp_path}/web-1.sock", timeout=10) as guest:
        for _ in range(3):
            guest.get()
        with pytest.raises(GuestShimError) as info:
            guest.get()
        assert info.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "requests_per_second" in str(info.value) and "retry in" in str(info.value)
        with grpc.insecure_channel(f"unix:{tmp_path}/web-1.sock") as raw, \
                pytest.raises(grpc.RpcError) as garbage:
            raw.unary_unary(method_path("Apply"), None, None)(b"\xff\xff", timeout=10)
        assert garbage.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED  # not decoded
        with Channel(f"unix:{tmp_path}/db-1.sock", timeout=10) as neighbour:
            for _ in range(10):  # the neighbour has a bucket of its own
                neighbour.get()
        time.sleep(1.1)
        guest.get()  # a token came back
    assert agent.state("web-1").generation == 0


def test_a_guest_calling_back_to_back_is_slowed_to_its_rate(start_agent: Any,
                                                           tmp_path: Path) -> None:
    """A call over the rate is answered once the rate would allow one again: a guest that
    floods sequentially makes the agent refuse a few calls a second, not a thousand."""
    _agent, servers = start_agent(two_vnics(tmp_path, requests_per_second=4, request_burst=1))
    started = time.monotonic()
    answers: list[grpc.StatusCode] = []
    with grpc.insecure_channel(f"unix:{tmp_path}/web-1.sock") as raw:
        call = raw.unary_unary(method_path("Get"), None, None)
        while time.monotonic() - started < 1.0:
            try:
                call(b"", timeout=10)
                answers.append(grpc.StatusCode.OK)
            except grpc.RpcError as exc:
                answers.append(exc.code())
    print(f"calls in one second at 4 a second, back to back: {len(answers)}")
    assert answers[0] == grpc.StatusCode.OK
    assert set(answers[1:]) <= {grpc.StatusCode.OK, grpc.StatusCode.RESOURCE_EXHAUSTED}
    assert len(answers) <= 12  # without holding back: hundreds
    assert servers["web-1"].channel.rate.refused <= 12


def test_a_guest_over_its_byte_rate_is_refused_before_decoding(start_agent: Any,
                                                               tmp_path: Path) -> None:
    """Large bodies cost decoding: the bytes a second are limited too (a burst up to the
    receive limit, so the largest request always passes once)."""
    agent, _servers = start_agent(two_vnics(tmp_path, bytes_per_second=1024,
                                            max_message_bytes=4096))
    body = b"\xff" * 3000  # never decodes
    answers = []
    with grpc.insecure_channel(f"unix:{tmp_path}/web-1.sock") as raw:
        apply = raw.unary_unary(method_path("Apply"), None, None)
        for _ in range(2):
            with pytest.raises(grpc.RpcError) as info:
                apply(body, timeout=10)
            answers.append((info.value.code(), info.value.details() or ""))
    assert answers[0][0] == grpc.StatusCode.INVALID_ARGUMENT  # decoded: not ours
    assert answers[1][0] == grpc.StatusCode.RESOURCE_EXHAUSTED  # not decoded at all
    assert "bytes_per_second" in answers[1][1] and "3000-byte request" in answers[1][1]
    assert agent.state("web-1").generation == 0


# -- the parts alone ------------------------------------------------------------------------


def test_a_keyed_hold_stops_only_its_own_key() -> None:
    gate = Gate()
    order: list[str] = []
    stamp = gate.stamp("a")
    assert stamp is not None
    with gate.shared("b"):
        assert gate.stamp("a") == stamp and gate.stamp("b") is None
        with gate.exclusive(key="a"):  # b's holder does not stop it
            assert gate.untouched_since("a", stamp)
            others = [threading.Thread(target=lambda: _hold(gate.shared("b"), order, "b")),
                      threading.Thread(target=lambda: _hold(gate.shared("a"), order, "a")),
                      threading.Thread(target=lambda: _hold(gate.shared(), order, "any"))]
            for thread in others:
                thread.start()
            time.sleep(0.05)
            assert order == ["b"]  # only another key's holder went on
            whole = threading.Thread(target=lambda: _hold(gate.exclusive(), order, "whole"))
            whole.start()
            time.sleep(0.05)
            assert order == ["b"]
    for thread in [*others, whole]:  # b's holder left: the whole hold first, then the rest
        thread.join(5)
    assert order[:2] == ["b", "whole"] and sorted(order[2:]) == ["a", "any"]
    moved = gate.stamp("a")
    assert moved is not None and moved > stamp  # holders of a and of everything came


def test_the_gate_lets_applies_share_it_and_repairs_go_first() -> None:
    gate = Gate()
    order: list[str] = []
    with gate.shared(), gate.shared():  # two VNICs at once
        assert gate.stamp("any") is None
        waiting = threading.Thread(target=lambda: _hold(gate.exclusive(), order, "repair"))
        waiting.start()
        time.sleep(0.05)
        assert order == []  # the repair waits for the applies in flight
        late = threading.Thread(target=lambda: _hold(gate.shared(), order, "apply"))
        late.start()
        time.sleep(0.05)
        assert order == []  # a new apply waits behind the repair
    waiting.join(5)
    late.join(5)
    assert order == ["repair", "apply"]
    stamp = gate.stamp("any")
    assert stamp is not None
    with gate.shared():
        pass
    assert gate.stamp("any") == stamp + 2


def test_a_patient_repair_lets_applies_in_until_its_patience_runs_out() -> None:
    gate = Gate()
    order: list[str] = []
    with gate.shared():
        waiting = threading.Thread(target=lambda: _hold(gate.exclusive(patience=0.3), order,
                                                        "repair"))
        waiting.start()
        time.sleep(0.05)
        with gate.shared():  # not held back yet: the repair waits for a quiet moment
            order.append("apply")
        time.sleep(0.4)  # patience ran out: now new applies wait behind the repair
        late = threading.Thread(target=lambda: _hold(gate.shared(), order, "late apply"))
        late.start()
        time.sleep(0.05)
        assert order == ["apply"]
    waiting.join(5)
    late.join(5)
    assert order == ["apply", "repair", "late apply"]


def _hold(hold: Any, order: list[str], name: str) -> None:
    with hold:
        order.append(name)


def test_a_reservation_takes_numbers_at_once_and_gives_back_only_its_own() -> None:
    pool, lock = ResourcePool(), threading.Lock()
    pool.flows.take(("a", "kept"))
    first = Reservation(pool, "a", lock)
    second = Reservation(pool, "b", lock)
    assert first.flows.take(("a", "kept")) == 1  # held before: not new
    assert first.flows.take(("a", "new")) == 2
    assert second.flows.take(("b", "x")) == 3  # never the number the other took
    first.abort()
    assert pool.flows.get(("a", "new")) is None and pool.flows.get(("a", "kept")) == 1
    assert first.holdings(frozenset({("a", "kept")})) == {
        "flows": [["a", "kept", 1]], "meters": [], "counters": [], "ct_profiles": [],
        "lb_members": [], "lb_groups": []}
    second.commit(frozenset({("b", "x")}))
    second.abort()  # nothing left to give back once committed
    assert pool.flows.get(("b", "x")) == 3


def test_the_rate_limit_refills_at_its_rate() -> None:
    now = [0.0]
    limit = RateLimit(2.0, 3, clock=lambda: now[0])
    assert [limit.take() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limit.take() == pytest.approx(0.5)
    now[0] += 0.5
    assert limit.take() == 0.0
    assert limit.take() > 0 and limit.refused == 2
    now[0] += 100
    assert [limit.take() for _ in range(4)].count(0.0) == 3  # never more than the burst
    now[0] += 100
    assert limit.take(2.5) == 0.0 and limit.take(1.0) == pytest.approx(0.25)
    with pytest.raises(ValueError):
        RateLimit(0, 1)
