from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class NodeStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    NODE_STATUS_UNSPECIFIED: _ClassVar[NodeStatus]
    NODE_STATUS_HEALTHY: _ClassVar[NodeStatus]
    NODE_STATUS_DEGRADED: _ClassVar[NodeStatus]
    NODE_STATUS_UNHEALTHY: _ClassVar[NodeStatus]
    NODE_STATUS_STARTING: _ClassVar[NodeStatus]
    NODE_STATUS_STOPPING: _ClassVar[NodeStatus]

class MemberState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MEMBER_STATE_UNSPECIFIED: _ClassVar[MemberState]
    MEMBER_STATE_ALIVE: _ClassVar[MemberState]
    MEMBER_STATE_SUSPECT: _ClassVar[MemberState]
    MEMBER_STATE_DEAD: _ClassVar[MemberState]
    MEMBER_STATE_LEFT: _ClassVar[MemberState]
NODE_STATUS_UNSPECIFIED: NodeStatus
NODE_STATUS_HEALTHY: NodeStatus
NODE_STATUS_DEGRADED: NodeStatus
NODE_STATUS_UNHEALTHY: NodeStatus
NODE_STATUS_STARTING: NodeStatus
NODE_STATUS_STOPPING: NodeStatus
MEMBER_STATE_UNSPECIFIED: MemberState
MEMBER_STATE_ALIVE: MemberState
MEMBER_STATE_SUSPECT: MemberState
MEMBER_STATE_DEAD: MemberState
MEMBER_STATE_LEFT: MemberState

class HealthDigest(_message.Message):
    __slots__ = ("node_id", "start_time_ms", "incarnation", "seq", "status", "score", "components", "sent_at_ms", "version", "http_addr", "p2p_addrs", "certificate", "local_health", "whole_components", "indexed_components", "wire_level")
    class ComponentsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    class IndexedComponentsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: int
        value: float
        def __init__(self, key: _Optional[int] = ..., value: _Optional[float] = ...) -> None: ...
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    START_TIME_MS_FIELD_NUMBER: _ClassVar[int]
    INCARNATION_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    COMPONENTS_FIELD_NUMBER: _ClassVar[int]
    SENT_AT_MS_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    HTTP_ADDR_FIELD_NUMBER: _ClassVar[int]
    P2P_ADDRS_FIELD_NUMBER: _ClassVar[int]
    CERTIFICATE_FIELD_NUMBER: _ClassVar[int]
    LOCAL_HEALTH_FIELD_NUMBER: _ClassVar[int]
    WHOLE_COMPONENTS_FIELD_NUMBER: _ClassVar[int]
    INDEXED_COMPONENTS_FIELD_NUMBER: _ClassVar[int]
    WIRE_LEVEL_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    start_time_ms: int
    incarnation: int
    seq: int
    status: NodeStatus
    score: float
    components: _containers.ScalarMap[str, float]
    sent_at_ms: int
    version: str
    http_addr: str
    p2p_addrs: _containers.RepeatedScalarFieldContainer[str]
    certificate: MemberCertificate
    local_health: int
    whole_components: int
    indexed_components: _containers.ScalarMap[int, float]
    wire_level: int
    def __init__(self, node_id: _Optional[str] = ..., start_time_ms: _Optional[int] = ..., incarnation: _Optional[int] = ..., seq: _Optional[int] = ..., status: _Optional[_Union[NodeStatus, str]] = ..., score: _Optional[float] = ..., components: _Optional[_Mapping[str, float]] = ..., sent_at_ms: _Optional[int] = ..., version: _Optional[str] = ..., http_addr: _Optional[str] = ..., p2p_addrs: _Optional[_Iterable[str]] = ..., certificate: _Optional[_Union[MemberCertificate, _Mapping]] = ..., local_health: _Optional[int] = ..., whole_components: _Optional[int] = ..., indexed_components: _Optional[_Mapping[int, float]] = ..., wire_level: _Optional[int] = ...) -> None: ...

class MemberCertificate(_message.Message):
    __slots__ = ("expires_at_ms", "signature")
    EXPIRES_AT_MS_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    expires_at_ms: int
    signature: bytes
    def __init__(self, expires_at_ms: _Optional[int] = ..., signature: _Optional[bytes] = ...) -> None: ...

class SuspectNotice(_message.Message):
    __slots__ = ("observer_id", "suspect_id", "suspect_start_time_ms", "suspect_incarnation", "suspect_seq", "sent_at_ms", "refused")
    OBSERVER_ID_FIELD_NUMBER: _ClassVar[int]
    SUSPECT_ID_FIELD_NUMBER: _ClassVar[int]
    SUSPECT_START_TIME_MS_FIELD_NUMBER: _ClassVar[int]
    SUSPECT_INCARNATION_FIELD_NUMBER: _ClassVar[int]
    SUSPECT_SEQ_FIELD_NUMBER: _ClassVar[int]
    SENT_AT_MS_FIELD_NUMBER: _ClassVar[int]
    REFUSED_FIELD_NUMBER: _ClassVar[int]
    observer_id: str
    suspect_id: str
    suspect_start_time_ms: int
    suspect_incarnation: int
    suspect_seq: int
    sent_at_ms: int
    refused: bool
    def __init__(self, observer_id: _Optional[str] = ..., suspect_id: _Optional[str] = ..., suspect_start_time_ms: _Optional[int] = ..., suspect_incarnation: _Optional[int] = ..., suspect_seq: _Optional[int] = ..., sent_at_ms: _Optional[int] = ..., refused: bool = ...) -> None: ...

class LeaveNotice(_message.Message):
    __slots__ = ("node_id", "start_time_ms", "incarnation", "seq", "sent_at_ms")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    START_TIME_MS_FIELD_NUMBER: _ClassVar[int]
    INCARNATION_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    SENT_AT_MS_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    start_time_ms: int
    incarnation: int
    seq: int
    sent_at_ms: int
    def __init__(self, node_id: _Optional[str] = ..., start_time_ms: _Optional[int] = ..., incarnation: _Optional[int] = ..., seq: _Optional[int] = ..., sent_at_ms: _Optional[int] = ...) -> None: ...

class Gossip(_message.Message):
    __slots__ = ("schema_version", "digest", "suspect", "leave")
    SCHEMA_VERSION_FIELD_NUMBER: _ClassVar[int]
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    SUSPECT_FIELD_NUMBER: _ClassVar[int]
    LEAVE_FIELD_NUMBER: _ClassVar[int]
    schema_version: int
    digest: HealthDigest
    suspect: SuspectNotice
    leave: LeaveNotice
    def __init__(self, schema_version: _Optional[int] = ..., digest: _Optional[_Union[HealthDigest, _Mapping]] = ..., suspect: _Optional[_Union[SuspectNotice, _Mapping]] = ..., leave: _Optional[_Union[LeaveNotice, _Mapping]] = ...) -> None: ...

class MemberEntry(_message.Message):
    __slots__ = ("state", "digest_statement", "suspicions", "leave_statement")
    STATE_FIELD_NUMBER: _ClassVar[int]
    DIGEST_STATEMENT_FIELD_NUMBER: _ClassVar[int]
    SUSPICIONS_FIELD_NUMBER: _ClassVar[int]
    LEAVE_STATEMENT_FIELD_NUMBER: _ClassVar[int]
    state: MemberState
    digest_statement: bytes
    suspicions: _containers.RepeatedScalarFieldContainer[bytes]
    leave_statement: bytes
    def __init__(self, state: _Optional[_Union[MemberState, str]] = ..., digest_statement: _Optional[bytes] = ..., suspicions: _Optional[_Iterable[bytes]] = ..., leave_statement: _Optional[bytes] = ...) -> None: ...

class ViewSnapshot(_message.Message):
    __slots__ = ("schema_version", "responder_id", "sent_at_ms", "members", "truncated", "next_after")
    SCHEMA_VERSION_FIELD_NUMBER: _ClassVar[int]
    RESPONDER_ID_FIELD_NUMBER: _ClassVar[int]
    SENT_AT_MS_FIELD_NUMBER: _ClassVar[int]
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    NEXT_AFTER_FIELD_NUMBER: _ClassVar[int]
    schema_version: int
    responder_id: str
    sent_at_ms: int
    members: _containers.RepeatedCompositeFieldContainer[MemberEntry]
    truncated: bool
    next_after: str
    def __init__(self, schema_version: _Optional[int] = ..., responder_id: _Optional[str] = ..., sent_at_ms: _Optional[int] = ..., members: _Optional[_Iterable[_Union[MemberEntry, _Mapping]]] = ..., truncated: bool = ..., next_after: _Optional[str] = ...) -> None: ...
