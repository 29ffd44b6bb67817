"""SetForwardingPipelineConfig / GetForwardingPipelineConfig / Capabilities, device checks."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest
from finsy.proto import p4i, p4r

from pyoffload.embedded.p4runtime.codec import encode_uint
from pyoffload.embedded.p4runtime.testing import (
    DEVICE_ID,
    SPFC,
    Target,
    action,
    eth,
    insert,
    running_target,
)

GFPC = p4r.GetForwardingPipelineConfigRequest


@pytest.fixture
def t(srv_program: tuple[p4i.P4Info, bytes]) -> Iterator[Target]:
    """A running target without a committed pipeline (these tests push their own)."""
    with running_target(*srv_program, commit=False) as target:
        yield target


def l2_entry(t: Target, mac: int, port: int) -> p4r.Entity:
    n = t.names
    return p4r.Entity(table_entry=p4r.TableEntry(
        table_id=n.id("l2"),
        match=[p4r.FieldMatch(field_id=n.field("l2", "hdr.ethernet.dstAddr"),
                              exact=p4r.FieldMatch.Exact(value=encode_uint(mac)))],
        action=p4r.TableAction(action=action(n.id("forward"), port))))


def get(t: Target, response_type: int = GFPC.ALL) -> p4r.GetForwardingPipelineConfigResponse:
    request = GFPC(device_id=DEVICE_ID)
    request.response_type = response_type  # type: ignore[assignment]
    return t.client.stub.GetForwardingPipelineConfig(request)


def code_of(call: object) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as info:
        call()  # type: ignore[operator]
    code: grpc.StatusCode = info.value.code()
    return code


def test_before_any_config(t: Target) -> None:
    assert not get(t).HasField("config")
    assert code_of(lambda: t.client.write(insert(l2_entry(t, 1, 2)))) == \
        grpc.StatusCode.FAILED_PRECONDITION
    assert code_of(lambda: t.client.read(p4r.Entity(table_entry=p4r.TableEntry()))) == \
        grpc.StatusCode.FAILED_PRECONDITION
    assert code_of(lambda: t.client.set_pipeline(None, None, SPFC.COMMIT)) == \
        grpc.StatusCode.NOT_FOUND


def test_commit_get_and_cookie(t: Target) -> None:
    t.client.set_pipeline(t.p4info, t.device_config, cookie=42)
    full = get(t).config
    assert full.p4info == t.p4info and full.p4_device_config == t.device_config
    assert full.cookie.cookie == 42
    cookie_only = get(t, GFPC.COOKIE_ONLY).config
    assert cookie_only.cookie.cookie == 42 and not cookie_only.HasField("p4info")
    assert not cookie_only.p4_device_config
    p4info_only = get(t, GFPC.P4INFO_AND_COOKIE).config
    assert p4info_only.HasField("p4info") and not p4info_only.p4_device_config
    device_only = get(t, GFPC.DEVICE_CONFIG_AND_COOKIE).config
    assert device_only.p4_device_config and not device_only.HasField("p4info")


def test_bad_configs_are_refused_and_the_running_pipeline_keeps_working(t: Target) -> None:
    t.client.set_pipeline(t.p4info, t.device_config)
    t.client.write(insert(l2_entry(t, 7, 2)))
    wrong_p4info = p4i.P4Info()
    wrong_p4info.CopyFrom(t.p4info)
    wrong_p4info.tables[0].preamble.name = "NoSuch.table"
    for p4info, device_config in [
        (t.p4info, b"{ this is not json"),
        (t.p4info, b'{"header_types": 5}'),
        (t.p4info, b""),
        (None, t.device_config),
        (wrong_p4info, t.device_config),
    ]:
        for action_kind in (SPFC.VERIFY, SPFC.VERIFY_AND_COMMIT, SPFC.VERIFY_AND_SAVE):
            code = code_of(lambda p=p4info, d=device_config, a=action_kind:
                           t.client.set_pipeline(p, d, a))
            assert code == grpc.StatusCode.INVALID_ARGUMENT
    frame = eth(7, 1)
    t.ports[1].inject(frame)
    assert t.ports[2].take() == frame
    assert len(t.client.read(p4r.Entity(table_entry=p4r.TableEntry()))) == 1


def test_verify_and_save_then_commit(t: Target) -> None:
    t.client.set_pipeline(t.p4info, t.device_config)
    t.client.write(insert(l2_entry(t, 7, 2)))
    t.client.set_pipeline(t.p4info, t.device_config, SPFC.VERIFY)
    assert len(t.client.read(p4r.Entity(table_entry=p4r.TableEntry()))) == 1
    t.client.set_pipeline(t.p4info, t.device_config, SPFC.VERIFY_AND_SAVE)
    # Reads and writes now address the saved config; packets still see the old one.
    assert t.client.read(p4r.Entity(table_entry=p4r.TableEntry())) == []
    t.client.write(insert(l2_entry(t, 7, 3)))
    frame = eth(7, 1)
    t.ports[1].inject(frame)
    assert t.ports[2].take() == frame
    assert code_of(lambda: t.client.set_pipeline(t.p4info, t.device_config, SPFC.COMMIT)) == \
        grpc.StatusCode.INVALID_ARGUMENT
    t.client.set_pipeline(None, None, SPFC.COMMIT)
    t.ports[1].inject(frame)
    assert t.ports[3].take() == frame


def test_reconcile_and_commit_preserves_state(t: Target) -> None:
    t.client.set_pipeline(t.p4info, t.device_config)
    t.client.write(insert(l2_entry(t, 7, 2)))
    register = p4r.Entity(register_entry=p4r.RegisterEntry(register_id=t.names.id("last_port")))
    t.ports[3].inject(eth(7, 1))
    assert t.ports[2].take() is not None
    before = t.client.read(register)
    t.client.set_pipeline(t.p4info, t.device_config, SPFC.RECONCILE_AND_COMMIT)
    assert len(t.client.read(p4r.Entity(table_entry=p4r.TableEntry()))) == 1
    assert t.client.read(register) == before
    t.ports[1].inject(eth(7, 1))
    assert t.ports[2].take() is not None
    # A program whose ids mean other objects cannot take over the state.
    renamed = p4i.P4Info()
    renamed.CopyFrom(t.p4info)
    renamed.tables[0].preamble.id, renamed.tables[1].preamble.id = (
        renamed.tables[1].preamble.id, renamed.tables[0].preamble.id)
    assert code_of(lambda: t.client.set_pipeline(renamed, t.device_config,
                                                 SPFC.RECONCILE_AND_COMMIT)) == \
        grpc.StatusCode.INVALID_ARGUMENT


def test_device_id_and_primary_checks(t: Target) -> None:
    request = SPFC(device_id=99, action=SPFC.VERIFY_AND_COMMIT)
    request.config.p4info.CopyFrom(t.p4info)
    request.election_id.low = 1
    assert code_of(lambda: t.client.stub.SetForwardingPipelineConfig(request)) == \
        grpc.StatusCode.NOT_FOUND
    request.device_id = DEVICE_ID
    request.election_id.low = 2  # not the primary's election id
    request.config.p4_device_config = t.device_config
    assert code_of(lambda: t.client.stub.SetForwardingPipelineConfig(request)) == \
        grpc.StatusCode.PERMISSION_DENIED
    assert code_of(lambda: t.client.stub.Capabilities(p4r.CapabilitiesRequest(device_id=5))) == \
        grpc.StatusCode.NOT_FOUND
    caps = t.client.stub.Capabilities(p4r.CapabilitiesRequest(device_id=DEVICE_ID))
    assert caps.p4runtime_api_version == "1.5.0"
