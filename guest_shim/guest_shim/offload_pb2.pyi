# mypy: disallow-any-generics=False
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Direction(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DIRECTION_UNSPECIFIED: _ClassVar[Direction]
    DIRECTION_FROM_GUEST: _ClassVar[Direction]
    DIRECTION_TO_GUEST: _ClassVar[Direction]
    DIRECTION_BOTH: _ClassVar[Direction]

class CtState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CT_STATE_ANY: _ClassVar[CtState]
    CT_STATE_NEW: _ClassVar[CtState]
    CT_STATE_ESTABLISHED: _ClassVar[CtState]
    CT_STATE_INVALID: _ClassVar[CtState]
    CT_STATE_UNTRACKED: _ClassVar[CtState]

class Verdict(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    VERDICT_UNSPECIFIED: _ClassVar[Verdict]
    VERDICT_ALLOW: _ClassVar[Verdict]
    VERDICT_ALLOW_TRACK: _ClassVar[Verdict]
    VERDICT_DENY: _ClassVar[Verdict]
    VERDICT_REJECT: _ClassVar[Verdict]
    VERDICT_PUNT: _ClassVar[Verdict]

class Service(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SERVICE_UNSPECIFIED: _ClassVar[Service]
    SERVICE_CONNTRACK: _ClassVar[Service]
    SERVICE_NAT: _ClassVar[Service]
    SERVICE_LB: _ClassVar[Service]
    SERVICE_RATE_LIMIT: _ClassVar[Service]
    SERVICE_MIRROR: _ClassVar[Service]
    SERVICE_COUNT: _ClassVar[Service]
DIRECTION_UNSPECIFIED: Direction
DIRECTION_FROM_GUEST: Direction
DIRECTION_TO_GUEST: Direction
DIRECTION_BOTH: Direction
CT_STATE_ANY: CtState
CT_STATE_NEW: CtState
CT_STATE_ESTABLISHED: CtState
CT_STATE_INVALID: CtState
CT_STATE_UNTRACKED: CtState
VERDICT_UNSPECIFIED: Verdict
VERDICT_ALLOW: Verdict
VERDICT_ALLOW_TRACK: Verdict
VERDICT_DENY: Verdict
VERDICT_REJECT: Verdict
VERDICT_PUNT: Verdict
SERVICE_UNSPECIFIED: Service
SERVICE_CONNTRACK: Service
SERVICE_NAT: Service
SERVICE_LB: Service
SERVICE_RATE_LIMIT: Service
SERVICE_MIRROR: Service
SERVICE_COUNT: Service

class PortRange(_message.Message):
    __slots__ = ("lo", "hi")
    LO_FIELD_NUMBER: _ClassVar[int]
    HI_FIELD_NUMBER: _ClassVar[int]
    lo: int
    hi: int
    def __init__(self, lo: _Optional[int] = ..., hi: _Optional[int] = ...) -> None: ...

class TcpFlags(_message.Message):
    __slots__ = ("value", "mask")
    VALUE_FIELD_NUMBER: _ClassVar[int]
    MASK_FIELD_NUMBER: _ClassVar[int]
    value: int
    mask: int
    def __init__(self, value: _Optional[int] = ..., mask: _Optional[int] = ...) -> None: ...

class FlowMatch(_message.Message):
    __slots__ = ("direction", "protocol", "src", "dst", "src_ports", "dst_ports")
    DIRECTION_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_FIELD_NUMBER: _ClassVar[int]
    SRC_FIELD_NUMBER: _ClassVar[int]
    DST_FIELD_NUMBER: _ClassVar[int]
    SRC_PORTS_FIELD_NUMBER: _ClassVar[int]
    DST_PORTS_FIELD_NUMBER: _ClassVar[int]
    direction: Direction
    protocol: str
    src: str
    dst: str
    src_ports: PortRange
    dst_ports: PortRange
    def __init__(self, direction: _Optional[_Union[Direction, str]] = ..., protocol: _Optional[str] = ..., src: _Optional[str] = ..., dst: _Optional[str] = ..., src_ports: _Optional[_Union[PortRange, _Mapping]] = ..., dst_ports: _Optional[_Union[PortRange, _Mapping]] = ...) -> None: ...

class Timeouts(_message.Message):
    __slots__ = ("tcp_syn", "tcp_established", "tcp_fin", "tcp_closed", "udp_new", "udp_established", "icmp")
    TCP_SYN_FIELD_NUMBER: _ClassVar[int]
    TCP_ESTABLISHED_FIELD_NUMBER: _ClassVar[int]
    TCP_FIN_FIELD_NUMBER: _ClassVar[int]
    TCP_CLOSED_FIELD_NUMBER: _ClassVar[int]
    UDP_NEW_FIELD_NUMBER: _ClassVar[int]
    UDP_ESTABLISHED_FIELD_NUMBER: _ClassVar[int]
    ICMP_FIELD_NUMBER: _ClassVar[int]
    tcp_syn: int
    tcp_established: int
    tcp_fin: int
    tcp_closed: int
    udp_new: int
    udp_established: int
    icmp: int
    def __init__(self, tcp_syn: _Optional[int] = ..., tcp_established: _Optional[int] = ..., tcp_fin: _Optional[int] = ..., tcp_closed: _Optional[int] = ..., udp_new: _Optional[int] = ..., udp_established: _Optional[int] = ..., icmp: _Optional[int] = ...) -> None: ...

class RateLimit(_message.Message):
    __slots__ = ("cir", "cbs", "pir", "pbs")
    CIR_FIELD_NUMBER: _ClassVar[int]
    CBS_FIELD_NUMBER: _ClassVar[int]
    PIR_FIELD_NUMBER: _ClassVar[int]
    PBS_FIELD_NUMBER: _ClassVar[int]
    cir: int
    cbs: int
    pir: int
    pbs: int
    def __init__(self, cir: _Optional[int] = ..., cbs: _Optional[int] = ..., pir: _Optional[int] = ..., pbs: _Optional[int] = ...) -> None: ...

class FlowConfig(_message.Message):
    __slots__ = ("services", "default_verdict", "timeouts", "rate_limit", "mirror_session")
    SERVICES_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_VERDICT_FIELD_NUMBER: _ClassVar[int]
    TIMEOUTS_FIELD_NUMBER: _ClassVar[int]
    RATE_LIMIT_FIELD_NUMBER: _ClassVar[int]
    MIRROR_SESSION_FIELD_NUMBER: _ClassVar[int]
    services: _containers.RepeatedScalarFieldContainer[Service]
    default_verdict: Verdict
    timeouts: Timeouts
    rate_limit: RateLimit
    mirror_session: int
    def __init__(self, services: _Optional[_Iterable[_Union[Service, str]]] = ..., default_verdict: _Optional[_Union[Verdict, str]] = ..., timeouts: _Optional[_Union[Timeouts, _Mapping]] = ..., rate_limit: _Optional[_Union[RateLimit, _Mapping]] = ..., mirror_session: _Optional[int] = ...) -> None: ...

class RuleMatch(_message.Message):
    __slots__ = ("direction", "ct_state", "protocol", "src", "dst", "src_ports", "dst_ports", "tcp_flags")
    DIRECTION_FIELD_NUMBER: _ClassVar[int]
    CT_STATE_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_FIELD_NUMBER: _ClassVar[int]
    SRC_FIELD_NUMBER: _ClassVar[int]
    DST_FIELD_NUMBER: _ClassVar[int]
    SRC_PORTS_FIELD_NUMBER: _ClassVar[int]
    DST_PORTS_FIELD_NUMBER: _ClassVar[int]
    TCP_FLAGS_FIELD_NUMBER: _ClassVar[int]
    direction: Direction
    ct_state: CtState
    protocol: str
    src: str
    dst: str
    src_ports: PortRange
    dst_ports: PortRange
    tcp_flags: TcpFlags
    def __init__(self, direction: _Optional[_Union[Direction, str]] = ..., ct_state: _Optional[_Union[CtState, str]] = ..., protocol: _Optional[str] = ..., src: _Optional[str] = ..., dst: _Optional[str] = ..., src_ports: _Optional[_Union[PortRange, _Mapping]] = ..., dst_ports: _Optional[_Union[PortRange, _Mapping]] = ..., tcp_flags: _Optional[_Union[TcpFlags, _Mapping]] = ...) -> None: ...

class Snat(_message.Message):
    __slots__ = ("address", "ports")
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    PORTS_FIELD_NUMBER: _ClassVar[int]
    address: str
    ports: PortRange
    def __init__(self, address: _Optional[str] = ..., ports: _Optional[_Union[PortRange, _Mapping]] = ...) -> None: ...

class Dnat(_message.Message):
    __slots__ = ("address", "port")
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    PORT_FIELD_NUMBER: _ClassVar[int]
    address: str
    port: int
    def __init__(self, address: _Optional[str] = ..., port: _Optional[int] = ...) -> None: ...

class Backend(_message.Message):
    __slots__ = ("address", "port", "weight")
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    PORT_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    address: str
    port: int
    weight: int
    def __init__(self, address: _Optional[str] = ..., port: _Optional[int] = ..., weight: _Optional[int] = ...) -> None: ...

class LoadBalance(_message.Message):
    __slots__ = ("vip", "port", "protocol", "backends")
    VIP_FIELD_NUMBER: _ClassVar[int]
    PORT_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_FIELD_NUMBER: _ClassVar[int]
    BACKENDS_FIELD_NUMBER: _ClassVar[int]
    vip: str
    port: int
    protocol: str
    backends: _containers.RepeatedCompositeFieldContainer[Backend]
    def __init__(self, vip: _Optional[str] = ..., port: _Optional[int] = ..., protocol: _Optional[str] = ..., backends: _Optional[_Iterable[_Union[Backend, _Mapping]]] = ...) -> None: ...

class Rule(_message.Message):
    __slots__ = ("id", "match", "verdict", "snat", "dnat", "load_balance", "rate_limit")
    ID_FIELD_NUMBER: _ClassVar[int]
    MATCH_FIELD_NUMBER: _ClassVar[int]
    VERDICT_FIELD_NUMBER: _ClassVar[int]
    SNAT_FIELD_NUMBER: _ClassVar[int]
    DNAT_FIELD_NUMBER: _ClassVar[int]
    LOAD_BALANCE_FIELD_NUMBER: _ClassVar[int]
    RATE_LIMIT_FIELD_NUMBER: _ClassVar[int]
    id: str
    match: RuleMatch
    verdict: Verdict
    snat: Snat
    dnat: Dnat
    load_balance: LoadBalance
    rate_limit: RateLimit
    def __init__(self, id: _Optional[str] = ..., match: _Optional[_Union[RuleMatch, _Mapping]] = ..., verdict: _Optional[_Union[Verdict, str]] = ..., snat: _Optional[_Union[Snat, _Mapping]] = ..., dnat: _Optional[_Union[Dnat, _Mapping]] = ..., load_balance: _Optional[_Union[LoadBalance, _Mapping]] = ..., rate_limit: _Optional[_Union[RateLimit, _Mapping]] = ...) -> None: ...

class Flow(_message.Message):
    __slots__ = ("id", "match", "config", "rules")
    ID_FIELD_NUMBER: _ClassVar[int]
    MATCH_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    RULES_FIELD_NUMBER: _ClassVar[int]
    id: str
    match: FlowMatch
    config: FlowConfig
    rules: _containers.RepeatedCompositeFieldContainer[Rule]
    def __init__(self, id: _Optional[str] = ..., match: _Optional[_Union[FlowMatch, _Mapping]] = ..., config: _Optional[_Union[FlowConfig, _Mapping]] = ..., rules: _Optional[_Iterable[_Union[Rule, _Mapping]]] = ...) -> None: ...

class OffloadRequest(_message.Message):
    __slots__ = ("vnic", "generation", "flows")
    VNIC_FIELD_NUMBER: _ClassVar[int]
    GENERATION_FIELD_NUMBER: _ClassVar[int]
    FLOWS_FIELD_NUMBER: _ClassVar[int]
    vnic: str
    generation: int
    flows: _containers.RepeatedCompositeFieldContainer[Flow]
    def __init__(self, vnic: _Optional[str] = ..., generation: _Optional[int] = ..., flows: _Optional[_Iterable[_Union[Flow, _Mapping]]] = ...) -> None: ...

class ApplyRequest(_message.Message):
    __slots__ = ("request",)
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    request: OffloadRequest
    def __init__(self, request: _Optional[_Union[OffloadRequest, _Mapping]] = ...) -> None: ...

class RuleResult(_message.Message):
    __slots__ = ("flow_id", "rule_id", "installed", "error")
    FLOW_ID_FIELD_NUMBER: _ClassVar[int]
    RULE_ID_FIELD_NUMBER: _ClassVar[int]
    INSTALLED_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    flow_id: str
    rule_id: str
    installed: bool
    error: str
    def __init__(self, flow_id: _Optional[str] = ..., rule_id: _Optional[str] = ..., installed: bool = ..., error: _Optional[str] = ...) -> None: ...

class ApplyReply(_message.Message):
    __slots__ = ("generation", "results")
    GENERATION_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    generation: int
    results: _containers.RepeatedCompositeFieldContainer[RuleResult]
    def __init__(self, generation: _Optional[int] = ..., results: _Optional[_Iterable[_Union[RuleResult, _Mapping]]] = ...) -> None: ...

class WithdrawRequest(_message.Message):
    __slots__ = ("flow_ids", "all")
    FLOW_IDS_FIELD_NUMBER: _ClassVar[int]
    ALL_FIELD_NUMBER: _ClassVar[int]
    flow_ids: _containers.RepeatedScalarFieldContainer[str]
    all: bool
    def __init__(self, flow_ids: _Optional[_Iterable[str]] = ..., all: bool = ...) -> None: ...

class WithdrawReply(_message.Message):
    __slots__ = ("generation", "withdrawn")
    GENERATION_FIELD_NUMBER: _ClassVar[int]
    WITHDRAWN_FIELD_NUMBER: _ClassVar[int]
    generation: int
    withdrawn: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, generation: _Optional[int] = ..., withdrawn: _Optional[_Iterable[str]] = ...) -> None: ...

class GetRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetReply(_message.Message):
    __slots__ = ("request",)
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    request: OffloadRequest
    def __init__(self, request: _Optional[_Union[OffloadRequest, _Mapping]] = ...) -> None: ...

class StatsRequest(_message.Message):
    __slots__ = ("flow_ids",)
    FLOW_IDS_FIELD_NUMBER: _ClassVar[int]
    flow_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, flow_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class Counter(_message.Message):
    __slots__ = ("packets", "bytes")
    PACKETS_FIELD_NUMBER: _ClassVar[int]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    packets: int
    bytes: int
    def __init__(self, packets: _Optional[int] = ..., bytes: _Optional[int] = ...) -> None: ...

class RuleStats(_message.Message):
    __slots__ = ("rule_id", "counter")
    RULE_ID_FIELD_NUMBER: _ClassVar[int]
    COUNTER_FIELD_NUMBER: _ClassVar[int]
    rule_id: str
    counter: Counter
    def __init__(self, rule_id: _Optional[str] = ..., counter: _Optional[_Union[Counter, _Mapping]] = ...) -> None: ...

class FlowStats(_message.Message):
    __slots__ = ("flow_id", "counter", "rules")
    FLOW_ID_FIELD_NUMBER: _ClassVar[int]
    COUNTER_FIELD_NUMBER: _ClassVar[int]
    RULES_FIELD_NUMBER: _ClassVar[int]
    flow_id: str
    counter: Counter
    rules: _containers.RepeatedCompositeFieldContainer[RuleStats]
    def __init__(self, flow_id: _Optional[str] = ..., counter: _Optional[_Union[Counter, _Mapping]] = ..., rules: _Optional[_Iterable[_Union[RuleStats, _Mapping]]] = ...) -> None: ...

class QuotaUse(_message.Message):
    __slots__ = ("name", "used", "limit")
    NAME_FIELD_NUMBER: _ClassVar[int]
    USED_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    name: str
    used: int
    limit: int
    def __init__(self, name: _Optional[str] = ..., used: _Optional[int] = ..., limit: _Optional[int] = ...) -> None: ...

class StatsReply(_message.Message):
    __slots__ = ("generation", "flows", "tracked_connections", "quotas")
    GENERATION_FIELD_NUMBER: _ClassVar[int]
    FLOWS_FIELD_NUMBER: _ClassVar[int]
    TRACKED_CONNECTIONS_FIELD_NUMBER: _ClassVar[int]
    QUOTAS_FIELD_NUMBER: _ClassVar[int]
    generation: int
    flows: _containers.RepeatedCompositeFieldContainer[FlowStats]
    tracked_connections: int
    quotas: _containers.RepeatedCompositeFieldContainer[QuotaUse]
    def __init__(self, generation: _Optional[int] = ..., flows: _Optional[_Iterable[_Union[FlowStats, _Mapping]]] = ..., tracked_connections: _Optional[int] = ..., quotas: _Optional[_Iterable[_Union[QuotaUse, _Mapping]]] = ...) -> None: ...

class WatchRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Event(_message.Message):
    __slots__ = ("kind", "generation", "flow_id", "rule_id", "quota", "message", "time_unix_ns")
    class Kind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        KIND_UNSPECIFIED: _ClassVar[Event.Kind]
        KIND_RULE_REJECTED: _ClassVar[Event.Kind]
        KIND_QUOTA_REACHED: _ClassVar[Event.Kind]
        KIND_TARGET_RESTARTED: _ClassVar[Event.Kind]
        KIND_TARGET_REINSTALLED: _ClassVar[Event.Kind]
        KIND_GENERATION_APPLIED: _ClassVar[Event.Kind]
    KIND_UNSPECIFIED: Event.Kind
    KIND_RULE_REJECTED: Event.Kind
    KIND_QUOTA_REACHED: Event.Kind
    KIND_TARGET_RESTARTED: Event.Kind
    KIND_TARGET_REINSTALLED: Event.Kind
    KIND_GENERATION_APPLIED: Event.Kind
    KIND_FIELD_NUMBER: _ClassVar[int]
    GENERATION_FIELD_NUMBER: _ClassVar[int]
    FLOW_ID_FIELD_NUMBER: _ClassVar[int]
    RULE_ID_FIELD_NUMBER: _ClassVar[int]
    QUOTA_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    TIME_UNIX_NS_FIELD_NUMBER: _ClassVar[int]
    kind: Event.Kind
    generation: int
    flow_id: str
    rule_id: str
    quota: str
    message: str
    time_unix_ns: int
    def __init__(self, kind: _Optional[_Union[Event.Kind, str]] = ..., generation: _Optional[int] = ..., flow_id: _Optional[str] = ..., rule_id: _Optional[str] = ..., quota: _Optional[str] = ..., message: _Optional[str] = ..., time_unix_ns: _Optional[int] = ...) -> None: ...
