"""Ids fixed by the request that creates something, so that the request, sent again after
its first answer was lost (the service died before answering, or answered after the
gateway's deadline: 503/504), names what the first attempt created instead of creating it
again. The gateway computes the request id (the caller, its Idempotency-Key and the
request, hashed) and passes it in the RPC command (`RequestId` in contracts/common.yaml);
each service derives the ids of what the request creates from it, and its insert of a
taken id adds nothing (INSERT ... ON CONFLICT DO NOTHING) and answers what is there."""

from __future__ import annotations

from uuid import UUID, uuid4, uuid5


def id_for(namespace: UUID, owner_id: UUID, request_id: str | None, *parts: object) -> UUID:
    """The id of what the request `request_id` of `owner_id` creates, in `namespace` (one per
    kind of thing); `parts` tell apart several things one request creates (e.g. an index).
    The same arguments give the same id; without a request id, a new one."""
    if not request_id:
        return uuid4()
    return uuid5(namespace, "/".join([str(owner_id), request_id, *(str(p) for p in parts)]))
