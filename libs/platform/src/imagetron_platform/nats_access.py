"""Who may do what on NATS: one user per service, allowed exactly its subjects.

The permissions are derived from the contract: `imagetron_contracts.streams.PARTICIPANTS`
lists, per service, the subjects its operations in `contracts/asyncapi.yaml` send and receive
and its durable consumers. A new service is its operations in the contract; its user follows.
Every deployment's nats-server configuration is made here (`authorization_config`): the
embedded stack writes it with its generated passwords, compose, Kubernetes and the Helm chart
include the same text with the passwords as environment variables
(`python -m imagetron.nats_users` writes those files; a test keeps them current).

What a user may do, besides its own subjects:
- replies come to its own inboxes only (`_INBOX.<user>.>`, see `inbox_prefix`), so no user
  reads another's replies or deliveries; a service that answers requests publishes its
  answer to the requester's inbox through `allow_responses`, not a wildcard;
- its durable consumers (and no other): look up, create with the contract's filter (the
  filter is in the API subject, and the server refuses a body that asks for another),
  fetch, and acknowledge;
- a stream it reads with consumers of its own (the notifier's per-connection ordered
  consumers): look up the stream, create, inspect and delete consumers on it, answer flow
  control. Reading messages any other way (`STREAM.MSG.GET`, `DIRECT.GET`) is nobody's.
- the provisioning step (`provision`) creates and updates the declared streams, nothing else.
Anonymous connections are refused: the configuration has users and no `no_auth_user`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

from imagetron_contracts.streams import PARTICIPANTS, STREAMS, Participant

#: The user of `python -m imagetron.provision` (migrations and streams).
PROVISIONING = "provision"
JS_API = "$JS.API"


@dataclass(frozen=True)
class NatsPermissions:
    publish: tuple[str, ...]
    subscribe: tuple[str, ...]
    #: May answer requests it receives (one reply to the requester's reply subject).
    allow_responses: bool = False


def inbox_prefix(user: str) -> str:
    """Where the user's replies and pull-consumer deliveries arrive (`<prefix>.<id>`)."""
    return f"_INBOX.{user}"


def service_permissions(participant: Participant) -> NatsPermissions:
    publish = list(participant.publishes)
    for consumer in participant.consumers:
        stream, durable = consumer.stream, consumer.durable
        publish += [
            f"{JS_API}.CONSUMER.INFO.{stream}.{durable}",
            f"{JS_API}.CONSUMER.CREATE.{stream}.{durable}.{consumer.filter_subject}",
            f"{JS_API}.CONSUMER.MSG.NEXT.{stream}.{durable}",
            f"$JS.ACK.{stream}.{durable}.>",
        ]
    for stream in participant.reads:
        publish += [
            f"{JS_API}.STREAM.INFO.{stream}",
            f"{JS_API}.CONSUMER.CREATE.{stream}",
            f"{JS_API}.CONSUMER.INFO.{stream}.*",
            f"{JS_API}.CONSUMER.DELETE.{stream}.*",
            f"$JS.FC.{stream}.>",
        ]
    return NatsPermissions(
        publish=tuple(publish),
        subscribe=(*participant.subscribes, f"{inbox_prefix(participant.name)}.>"),
        allow_responses=participant.answers,
    )


def provisioning_permissions() -> NatsPermissions:
    return NatsPermissions(
        publish=tuple(
            f"{JS_API}.STREAM.{action}.{stream.name}"
            for stream in STREAMS
            for action in ("INFO", "CREATE", "UPDATE")
        ),
        subscribe=(f"{inbox_prefix(PROVISIONING)}.>",),
    )


#: Every NATS user of a deployment: the services of the contract, and provisioning.
USERS: Mapping[str, NatsPermissions] = {
    **{p.name: service_permissions(p) for p in PARTICIPANTS},
    PROVISIONING: provisioning_permissions(),
}


def password_variable(user: str) -> str:
    """The environment variable that holds `user`'s password in the deployments (compose,
    Kubernetes, the chart's Secret): the NATS server reads it, the service gets it as
    `IMAGETRON_NATS_PASSWORD`."""
    return f"IMAGETRON_NATS_{user.upper()}_PASSWORD"


def authorization_config(
    passwords: Mapping[str, str] | None = None,
    *,
    users: Mapping[str, NatsPermissions] = USERS,
) -> str:
    """The nats-server `authorization` block for `users`: with `passwords`, those (the
    embedded stack's); without, each read from `password_variable(user)` in the NATS
    server's environment (the deployments')."""
    lines = [
        "# The NATS users of Imagetron and what each may publish and subscribe to, made by",
        "# imagetron_platform.nats_access from contracts/asyncapi.yaml. Do not edit.",
        "authorization {",
        "  users = [",
    ]
    for user, permissions in users.items():
        password = (
            json.dumps(passwords[user]) if passwords is not None else f"${password_variable(user)}"
        )
        lines += [
            "    {",
            f"      user: {json.dumps(user)}",
            f"      password: {password}",
            "      permissions: {",
            f"        publish: {_allow(permissions.publish)}",
            f"        subscribe: {_allow(permissions.subscribe)}",
        ]
        if permissions.allow_responses:
            lines.append("        allow_responses: true")
        lines += ["      }", "    }"]
    lines += ["  ]", "}", ""]
    return "\n".join(lines)


def _allow(subjects: tuple[str, ...]) -> str:
    # No allow list at all would allow everything.
    return f"{{allow: {_subjects(subjects)}}}" if subjects else '{deny: [">"]}'


def _subjects(subjects: tuple[str, ...]) -> str:
    return "[\n" + "".join(f"          {json.dumps(s)}\n" for s in subjects) + "        ]"
