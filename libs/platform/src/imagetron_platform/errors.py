"""One error hierarchy for every service, rendered as RFC 9457 problem documents.

Domain and service-layer code raise these plain exceptions; the HTTP and RPC edges turn them
into `Problem` documents, and the RPC client turns a `Problem` back into the same exception,
so a 404 raised in the images service is a 404 at the gateway.
"""

from __future__ import annotations

from imagetron_contracts.models.common import FieldError, Problem

PROBLEM_BASE = "https://imagetron.dev/problems/"


class ProblemError(Exception):
    status: int = 500
    title: str = "Internal error"
    slug: str = "internal"

    def __init__(
        self,
        detail: str,
        *,
        errors: list[FieldError] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors
        #: Sent with the HTTP answer (e.g. `Retry-After`); not part of the document.
        self.headers = headers or {}

    def to_problem(self, instance: str | None = None) -> Problem:
        return Problem(
            type=PROBLEM_BASE + self.slug,
            title=self.title,
            status=self.status,
            detail=self.detail,
            instance=instance,
            errors=self.errors,
        )

    @staticmethod
    def from_problem(problem: Problem) -> ProblemError:
        cls = _BY_STATUS.get(problem.status, ProblemError)
        err = cls(problem.detail or problem.title, errors=problem.errors)
        if cls is ProblemError:  # a status we have no class for: keep it as sent
            err.status, err.title = problem.status, problem.title
        return err


class InvalidRequest(ProblemError):
    status = 422
    title = "Invalid request"
    slug = "invalid-request"


class Unauthorized(ProblemError):
    status = 401
    title = "Unauthorized"
    slug = "unauthorized"


class Forbidden(ProblemError):
    status = 403
    title = "Forbidden"
    slug = "forbidden"


class NotFound(ProblemError):
    status = 404
    title = "Not found"
    slug = "not-found"


class Conflict(ProblemError):
    status = 409
    title = "Conflict"
    slug = "conflict"


class Gone(ProblemError):
    """What the request names existed and was deleted: sent again, a finished create does
    not create it again."""

    status = 410
    title = "Gone"
    slug = "gone"


class PayloadTooLarge(ProblemError):
    status = 413
    title = "Content too large"
    slug = "content-too-large"


class UnsupportedMediaType(ProblemError):
    status = 415
    title = "Unsupported media type"
    slug = "unsupported-media-type"


class TooManyRequests(ProblemError):
    status = 429
    title = "Too many requests"
    slug = "too-many-requests"


class BadGateway(ProblemError):
    status = 502
    title = "Bad gateway"
    slug = "bad-gateway"


class ServiceUnavailable(ProblemError):
    """A dependency is down or the service is at a limit: try again after
    `retry_after_seconds` (the HTTP edge sends it as `Retry-After`)."""

    status = 503
    title = "Service unavailable"
    slug = "service-unavailable"
    retry_after_seconds = 5


class ServiceTimeout(ProblemError):
    status = 504
    title = "Service timeout"
    slug = "service-timeout"


_BY_STATUS: dict[int, type[ProblemError]] = {
    cls.status: cls
    for cls in (
        InvalidRequest,
        Unauthorized,
        Forbidden,
        NotFound,
        Conflict,
        Gone,
        PayloadTooLarge,
        UnsupportedMediaType,
        TooManyRequests,
        BadGateway,
        ServiceUnavailable,
        ServiceTimeout,
    )
}
