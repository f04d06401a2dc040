"""Message classes for ``mesh/digest.proto``, built without protoc.

No protocol compiler is part of this project's toolchain, so instead of generated code this
module builds the schema's ``FileDescriptorProto`` in Python and asks the protobuf runtime for
the message classes, which is what generated ``*_pb2.py`` modules do with a serialized
descriptor. ``mesh/digest.proto`` stays the documented schema;
``tests/mesh/test_digest.py`` parses it and fails if it and ``DESCRIPTOR`` drift apart.

The classes are typed ``Any``: they are dynamic, and only ``mesh.digest`` touches them.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

PROTO_FILE = "mesh/digest.proto"
PACKAGE = "chorus.health.v1"

_F = descriptor_pb2.FieldDescriptorProto
_STRING = _F.TYPE_STRING
_INT64 = _F.TYPE_INT64
_UINT64 = _F.TYPE_UINT64
_UINT32 = _F.TYPE_UINT32
_DOUBLE = _F.TYPE_DOUBLE
_BOOL = _F.TYPE_BOOL
_BYTES = _F.TYPE_BYTES
_ENUM = _F.TYPE_ENUM
_MESSAGE = _F.TYPE_MESSAGE


def _field(
    message: descriptor_pb2.DescriptorProto,
    name: str,
    number: int,
    kind: int,
    *,
    repeated: bool = False,
    type_name: str | None = None,
    oneof_index: int | None = None,
) -> None:
    field = message.field.add()
    field.name = name
    field.number = number
    field.type = kind  # type: ignore[assignment]
    field.label = _F.LABEL_REPEATED if repeated else _F.LABEL_OPTIONAL
    field.json_name = _json_name(name)
    if type_name is not None:
        field.type_name = f".{PACKAGE}.{type_name}"
    if oneof_index is not None:
        field.oneof_index = oneof_index


def _json_name(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


def _enum(file: descriptor_pb2.FileDescriptorProto, name: str, values: list[str]) -> None:
    enum = file.enum_type.add()
    enum.name = name
    for number, value_name in enumerate(values):
        value = enum.value.add()
        value.name = value_name
        value.number = number


def build_file_descriptor() -> descriptor_pb2.FileDescriptorProto:
    """The schema of ``mesh/digest.proto`` as a descriptor."""
    file = descriptor_pb2.FileDescriptorProto()
    file.name = PROTO_FILE
    file.package = PACKAGE
    file.syntax = "proto3"

    _enum(
        file,
        "NodeStatus",
        [
            "NODE_STATUS_UNSPECIFIED",
            "NODE_STATUS_HEALTHY",
            "NODE_STATUS_DEGRADED",
            "NODE_STATUS_UNHEALTHY",
            "NODE_STATUS_STARTING",
            "NODE_STATUS_STOPPING",
        ],
    )
    _enum(
        file,
        "MemberState",
        [
            "MEMBER_STATE_UNSPECIFIED",
            "MEMBER_STATE_ALIVE",
            "MEMBER_STATE_SUSPECT",
            "MEMBER_STATE_DEAD",
            "MEMBER_STATE_LEFT",
        ],
    )

    digest = file.message_type.add()
    digest.name = "HealthDigest"
    # map<string, double> is a repeated nested *Entry message with the map_entry option.
    entry = digest.nested_type.add()
    entry.name = "ComponentsEntry"
    entry.options.map_entry = True
    _field(entry, "key", 1, _STRING)
    _field(entry, "value", 2, _DOUBLE)
    _field(digest, "node_id", 1, _STRING)
    _field(digest, "start_time_ms", 2, _INT64)
    _field(digest, "incarnation", 3, _UINT64)
    _field(digest, "seq", 4, _UINT64)
    _field(digest, "status", 5, _ENUM, type_name="NodeStatus")
    _field(digest, "score", 6, _DOUBLE)
    _field(
        digest, "components", 7, _MESSAGE, repeated=True, type_name="HealthDigest.ComponentsEntry"
    )
    _field(digest, "sent_at_ms", 8, _INT64)
    _field(digest, "version", 9, _STRING)
    _field(digest, "http_addr", 10, _STRING)
    _field(digest, "p2p_addrs", 11, _STRING, repeated=True)
    _field(digest, "certificate", 12, _MESSAGE, type_name="MemberCertificate")

    certificate = file.message_type.add()
    certificate.name = "MemberCertificate"
    _field(certificate, "expires_at_ms", 1, _INT64)
    _field(certificate, "signature", 2, _BYTES)

    suspect = file.message_type.add()
    suspect.name = "SuspectNotice"
    _field(suspect, "observer_id", 1, _STRING)
    _field(suspect, "suspect_id", 2, _STRING)
    _field(suspect, "suspect_start_time_ms", 3, _INT64)
    _field(suspect, "suspect_incarnation", 4, _UINT64)
    _field(suspect, "suspect_seq", 5, _UINT64)
    _field(suspect, "sent_at_ms", 6, _INT64)

    leave = file.message_type.add()
    leave.name = "LeaveNotice"
    _field(leave, "node_id", 1, _STRING)
    _field(leave, "start_time_ms", 2, _INT64)
    _field(leave, "incarnation", 3, _UINT64)
    _field(leave, "seq", 4, _UINT64)
    _field(leave, "sent_at_ms", 5, _INT64)

    gossip = file.message_type.add()
    gossip.name = "Gossip"
    gossip.oneof_decl.add().name = "body"
    _field(gossip, "schema_version", 1, _UINT32)
    _field(gossip, "digest", 2, _MESSAGE, type_name="HealthDigest", oneof_index=0)
    _field(gossip, "suspect", 3, _MESSAGE, type_name="SuspectNotice", oneof_index=0)
    _field(gossip, "leave", 4, _MESSAGE, type_name="LeaveNotice", oneof_index=0)

    member = file.message_type.add()
    member.name = "MemberEntry"
    for number in (1, 3, 4, 5, 6):  # the unsigned fields of v0.1
        reserved = member.reserved_range.add()
        reserved.start, reserved.end = number, number + 1
    _field(member, "state", 2, _ENUM, type_name="MemberState")
    _field(member, "digest_statement", 7, _BYTES)
    _field(member, "suspicions", 8, _BYTES, repeated=True)
    _field(member, "leave_statement", 9, _BYTES)

    snapshot = file.message_type.add()
    snapshot.name = "ViewSnapshot"
    _field(snapshot, "schema_version", 1, _UINT32)
    _field(snapshot, "responder_id", 2, _STRING)
    _field(snapshot, "sent_at_ms", 3, _INT64)
    _field(snapshot, "members", 4, _MESSAGE, repeated=True, type_name="MemberEntry")
    _field(snapshot, "truncated", 5, _BOOL)
    return file


def _load() -> Any:
    # Our own pool, not the process-wide default: nothing else can claim the file name or
    # the package first, and importing this module twice cannot conflict.
    pool = descriptor_pool.DescriptorPool()
    return pool.Add(build_file_descriptor())


DESCRIPTOR: Any = _load()


def _message(name: str) -> Any:
    return message_factory.GetMessageClass(DESCRIPTOR.message_types_by_name[name])


HealthDigest: Any = _message("HealthDigest")
MemberCertificate: Any = _message("MemberCertificate")
SuspectNotice: Any = _message("SuspectNotice")
LeaveNotice: Any = _message("LeaveNotice")
Gossip: Any = _message("Gossip")
MemberEntry: Any = _message("MemberEntry")
ViewSnapshot: Any = _message("ViewSnapshot")

# Enum numbers, by the names the proto file gives them.
NodeStatus: dict[str, int] = {
    value.name: value.number for value in DESCRIPTOR.enum_types_by_name["NodeStatus"].values
}
MemberState: dict[str, int] = {
    value.name: value.number for value in DESCRIPTOR.enum_types_by_name["MemberState"].values
}
