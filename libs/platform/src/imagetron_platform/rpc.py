"""Request/reply between services over core NATS, with problems as first-class replies.

Server side, `rpc_handler` wraps a FastStream subscriber's function so that it always
answers an `RpcReply`: the result, or the `Problem` of a `ProblemError`, or a 500 problem
(logged with its traceback) for anything unexpected. Client side, `RpcClient.call` turns
the reply back into the result model or re-raises the same `ProblemError` class.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar

from faststream.nats import NatsBroker
from imagetron_contracts.models.common import RpcReply
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError
from pydantic import BaseModel, ValidationError

from imagetron_platform.errors import (
    BadGateway,
    ProblemError,
    ServiceTimeout,
    ServiceUnavailable,
)

log = logging.getLogger(__name__)
P = ParamSpec("P")
R = TypeVar("R", bound=BaseModel)


def rpc_handler(
    func: Callable[P, Awaitable[BaseModel]],
) -> Callable[P, Awaitable[dict[str, Any]]]:
    @functools.wraps(func)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> dict[str, Any]:
        try:
            result = await func(*args, **kwargs)
        except ProblemError as exc:
            reply = RpcReply(problem=exc.to_problem())
        except Exception:
            log.exception("rpc handler %s failed", func.__name__)
            reply = RpcReply(problem=ProblemError("The service failed to answer.").to_problem())
        else:
            reply = RpcReply(result=result.model_dump(mode="json"))
        return reply.model_dump(mode="json")

    return wrapper


class RpcClient:
    def __init__(self, broker: NatsBroker, *, timeout: float) -> None:
        self._broker = broker
        self._timeout = timeout

    async def call(self, subject: str, request: BaseModel, result_type: type[R]) -> R:
        try:
            message = await self._broker.request(
                request.model_dump(mode="json"), subject, timeout=self._timeout
            )
        except NoRespondersError as exc:
            raise ServiceUnavailable(
                f"No service is listening on {subject}; it may be starting or down."
            ) from exc
        except (TimeoutError, NatsTimeoutError) as exc:
            raise ServiceTimeout(
                f"No answer on {subject} within {self._timeout:g} s."
            ) from exc
        reply = RpcReply.model_validate_json(message.body)
        if reply.problem is not None:
            raise ProblemError.from_problem(reply.problem)
        try:
            return result_type.model_validate(reply.result)
        except ValidationError as exc:
            raise BadGateway(f"Malformed reply on {subject}: {exc}") from exc
