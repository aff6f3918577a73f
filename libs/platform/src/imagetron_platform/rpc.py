"""Request/reply between services over core NATS, with problems as first-class replies.

Server side, a service lists its subjects and handlers in a table of `RpcRoute`s and
`register_rpc` subscribes them. Each handler is an application function whose first
parameter is the request model and whose other parameters are its dependencies, injected
by name (see `inject`). `rpc_handler` wraps it so that it always answers an `RpcReply`: the
result, or the `Problem` of a `ProblemError`, a 422 problem when the request does not match
the handler's request model, or a 500 problem (logged with its traceback, which Sentry
reports when configured; the reply says only "internal error") for anything unexpected.
Client side, `RpcClient.call` turns the reply back into the result model or re-raises the
same `ProblemError` class, except that a service's own failure (a 5xx it does not name as
its upstream's or a dependency's) is the caller's upstream failing: `BadGateway`.
"""

from __future__ import annotations

import functools
import inspect
import logging
import time
import typing
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Annotated, Any, ParamSpec, TypeVar

from faststream.nats import NatsBroker
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError
from pydantic import BaseModel, ValidationError, ValidatorFunctionWrapHandler, WrapValidator

from imagetron_contracts.models.common import FieldError, RpcReply
from imagetron_platform import correlation
from imagetron_platform.errors import (
    BadGateway,
    InvalidRequest,
    ProblemError,
    ServiceTimeout,
    ServiceUnavailable,
)
from imagetron_platform.outages import dependency_outage

log = logging.getLogger(__name__)
P = ParamSpec("P")
R = TypeVar("R", bound=BaseModel)


@dataclass(frozen=True)
class _MalformedRequest:
    """Stands in for a request model that failed validation, so the wrapper can answer 422."""

    error: ValidationError


def _keep_malformed(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    try:
        return handler(value)
    except ValidationError as exc:
        return _MalformedRequest(exc)


def _invalid_request(error: ValidationError) -> InvalidRequest:
    errors = [
        FieldError(loc=[p for p in e["loc"] if isinstance(p, str | int)], msg=e["msg"])
        for e in error.errors()
    ]
    detail = "; ".join(f"{'.'.join(map(str, e.loc)) or 'body'}: {e.msg}" for e in errors)
    return InvalidRequest(f"Invalid request: {detail}", errors=errors)


def _rpc_signature(func: Callable[..., Any]) -> inspect.Signature:
    """The signature FastStream sees: request models are parsed leniently (a mismatch becomes
    a `_MalformedRequest` instead of an exception that would leave the requester without an
    answer), and the return value is the reply dict, not the handler's result type (FastStream
    would otherwise cast the reply to that type and fail)."""
    signature = inspect.signature(func)
    try:
        hints = typing.get_type_hints(func, include_extras=True)
    except NameError:  # annotations FastStream resolves itself (e.g. local classes)
        hints = {}
    parameters = []
    for param in signature.parameters.values():
        annotation = hints.get(param.name, param.annotation)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            annotation = Annotated[annotation, WrapValidator(_keep_malformed)]
        parameters.append(param.replace(annotation=annotation))
    return signature.replace(parameters=parameters, return_annotation=dict[str, Any])


def rpc_handler(
    func: Callable[P, Awaitable[BaseModel]],
) -> Callable[P, Awaitable[dict[str, Any]]]:
    @functools.wraps(func)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> dict[str, Any]:
        malformed = next(
            (a for a in (*args, *kwargs.values()) if isinstance(a, _MalformedRequest)), None
        )
        if malformed is not None:
            log.warning("rpc handler %s got a malformed request", func.__name__)
            return RpcReply(problem=_invalid_request(malformed.error).to_problem()).model_dump(
                mode="json"
            )
        started = time.perf_counter()
        try:
            result = await func(*args, **kwargs)
        except ProblemError as exc:
            log.info(
                "rpc %s answered %s in %.1f ms: %s",
                func.__name__,
                exc.status,
                (time.perf_counter() - started) * 1000,
                exc.detail,
            )
            reply = RpcReply(problem=exc.to_problem())
        except Exception as exc:
            problem: ProblemError | None = dependency_outage(exc)
            if problem is None:
                log.exception("rpc handler %s failed", func.__name__)
                problem = ProblemError("Internal error: the service failed unexpectedly.")
            else:
                log.warning("rpc %s answered 503: %r", func.__name__, exc)
            reply = RpcReply(problem=problem.to_problem())
        else:
            log.info(
                "rpc %s answered in %.1f ms", func.__name__, (time.perf_counter() - started) * 1000
            )
            reply = RpcReply(result=result.model_dump(mode="json"))
        return reply.model_dump(mode="json")

    wrapper.__signature__ = _rpc_signature(func)  # type: ignore[attr-defined]
    return wrapper


def inject(
    handler: Callable[..., Awaitable[R]], dependencies: object
) -> Callable[..., Awaitable[R]]:
    """`handler` as a function of its request alone: its first parameter is the request;
    every other parameter is filled from `dependencies` by name when called. `uow` gets a
    fresh unit of work from `dependencies.new_uow()` (one per call: a unit of work is not
    shared by concurrent handlers); any other name gets the attribute of that name.

    A parameter with no such dependency (and no default) is a TypeError here, when the
    subscribers are registered, not at the first request."""
    signature = inspect.signature(handler)
    hints = typing.get_type_hints(handler)
    request, *rest = signature.parameters.values()
    providers: dict[str, Callable[[], object]] = {}
    for param in rest:
        source = "new_uow" if param.name == "uow" else param.name
        if hasattr(dependencies, source):
            attribute = getattr(dependencies, source)
            providers[param.name] = attribute if param.name == "uow" else _constant(attribute)
        elif param.default is inspect.Parameter.empty:
            raise TypeError(
                f"{handler.__qualname__} needs {param.name!r}, which "
                f"{type(dependencies).__name__} does not provide"
            )

    async def call(*args: Any, **kwargs: Any) -> R:
        (request_value,) = (*args, *kwargs.values())  # FastStream passes it by name
        dependencies = {name: provide() for name, provide in providers.items()}
        return await handler(request_value, **dependencies)

    call.__name__ = handler.__name__
    call.__qualname__ = handler.__qualname__
    call.__doc__ = handler.__doc__
    call.__module__ = handler.__module__
    # What FastStream (and `rpc_handler`) read: the request model and the result model.
    call.__annotations__ = {request.name: hints[request.name], "return": hints["return"]}
    call.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [request.replace(annotation=hints[request.name])], return_annotation=hints["return"]
    )
    return call


def _constant(value: object) -> Callable[[], object]:
    return lambda: value


@dataclass(frozen=True)
class RpcRoute:
    """One request/reply subject and the application function that answers it.

    `max_workers` > 1 answers that many requests at once (for handlers that wait on a slow
    third party); the rest answer one at a time per subject, fast."""

    subject: str
    handler: Callable[..., Awaitable[BaseModel]]
    max_workers: int = 1


def register_rpc(
    broker: NatsBroker, queue: str, routes: Iterable[RpcRoute], dependencies: object
) -> None:
    """Subscribe every route in the queue group `queue` (any number of replicas answer each
    request once), with its handler's dependencies injected from `dependencies`."""
    for route in routes:
        call = inject(route.handler, dependencies)
        result = typing.get_type_hints(route.handler)["return"]
        broker.subscriber(
            route.subject,
            queue=queue,
            max_workers=route.max_workers,
            title=f"{queue}_handle_{route.subject.replace('.', '_')}",
            description=f"{_summary(route.handler)}Replies with an RpcReply whose result is "
            f"{_article(result.__name__)} {result.__name__}.",
        )(rpc_handler(call))


def _article(noun: str) -> str:
    return "an" if noun[:1] in set("AEIOU") else "a"


def _summary(handler: Callable[..., object]) -> str:
    """The first paragraph of the handler's docstring, as one line."""
    paragraph = inspect.cleandoc(handler.__doc__ or "").split("\n\n", 1)[0]
    text = " ".join(paragraph.split())
    return f"{text} " if text else ""


#: The 5xx problems a service names itself (its own upstream, a dependency down, a timeout):
#: passed on as they are. Any other (500: `rpc_handler`'s answer to an unexpected exception)
#: is the service failing, which to its caller is an upstream failing.
_PASSED_ON = frozenset({BadGateway.status, ServiceUnavailable.status, ServiceTimeout.status})


def _failed_unexpectedly(subject: str) -> str:
    """What a caller is told of a service's own failure: which service, and the correlation
    id that finds its log line and error report; never the service's exception."""
    found_by = correlation.current()
    where = f"; its log and error report carry correlation id {found_by}" if found_by else ""
    return f"The {_service(subject)} service failed unexpectedly on {subject}{where}."


def _malformed(subject: str) -> str:
    """What a caller is told of a reply that breaks the contract: not the validation text,
    which quotes the reply's fields and values (it is logged, with the correlation id)."""
    found_by = correlation.current()
    where = f"; the logs carry correlation id {found_by}" if found_by else ""
    return (
        f"The {_service(subject)} service answered {subject} with a reply its contract "
        f"does not allow{where}."
    )


def _service(subject: str) -> str:
    return subject.split(".")[1] if subject.startswith("rpc.") else subject


class RpcClient:
    def __init__(self, broker: NatsBroker, *, timeout: float) -> None:
        self._broker = broker
        self._timeout = timeout

    async def call(
        self,
        subject: str,
        request: BaseModel,
        result_type: type[R],
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - the NATS request itself needs the deadline
    ) -> R:
        """The result of `subject`'s handler. `timeout` overrides the client's for calls
        known to take longer (e.g. those that wait for a language model)."""
        wait = self._timeout if timeout is None else timeout
        try:
            message = await self._broker.request(
                request.model_dump(mode="json"), subject, timeout=wait
            )
        except NoRespondersError as exc:
            raise ServiceUnavailable(
                f"No service is listening on {subject}; it may be starting or down."
            ) from exc
        except (TimeoutError, NatsTimeoutError) as exc:
            raise ServiceTimeout(f"No answer on {subject} within {wait:g} s.") from exc
        try:
            reply = RpcReply.model_validate_json(message.body)
            if reply.problem is None:
                return result_type.model_validate(reply.result)
        except ValidationError as exc:
            # The validation text quotes the reply's fields and values: logged, not told.
            log.error("malformed reply on %s: %s", subject, exc)
            raise BadGateway(_malformed(subject)) from exc
        if reply.problem.status >= 500 and reply.problem.status not in _PASSED_ON:
            raise BadGateway(_failed_unexpectedly(subject))
        raise ProblemError.from_problem(reply.problem)
