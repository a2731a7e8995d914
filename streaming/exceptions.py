"""One exception hierarchy: every error has a stable code and an HTTP status.

Errors raised before a stream starts become JSON responses in one place (``api.error_response``);
provider errors raised after it started become an ``error`` chunk with the same code.
"""

from __future__ import annotations


class StreamingError(Exception):
    code = "error"
    status = 400
    default_message = "The request could not be completed."

    def __init__(self, message: str | None = None, *, field: str | None = None) -> None:
        self.message = message or self.default_message
        self.field = field
        super().__init__(self.message)

    def as_dict(self) -> dict[str, str]:
        data = {"code": self.code, "message": self.message}
        if self.field:
            data["field"] = self.field
        return data


class InvalidRequest(StreamingError):
    code = "invalid_request"
    status = 400
    default_message = "The request is not valid."


class NotAuthenticated(StreamingError):
    code = "not_authenticated"
    status = 401
    default_message = "Log in to use this API."


class PermissionDenied(StreamingError):
    code = "forbidden"
    status = 403
    default_message = "You may not do this."


class NotFound(StreamingError):
    code = "not_found"
    status = 404
    default_message = "Not found."


class MethodNotAllowed(StreamingError):
    code = "method_not_allowed"
    status = 405
    default_message = "This method is not allowed here."


class ReplyInProgress(StreamingError):
    code = "reply_in_progress"
    status = 409
    default_message = "A reply is already streaming in this conversation."


class NotStreaming(StreamingError):
    code = "not_streaming"
    status = 409
    default_message = "This message is not streaming."


class NotContinuable(StreamingError):
    code = "not_continuable"
    status = 409
    default_message = "Only a reply cut short can be continued."


class NotAwaitingApproval(StreamingError):
    code = "not_awaiting_approval"
    status = 409
    default_message = "This reply awaits no approval."


class BudgetExceeded(StreamingError):
    code = "budget_exceeded"
    status = 402
    default_message = "Your monthly budget for model replies is used up."


class TooManyReplies(StreamingError):
    """A user's fair-use limit (``MAX_CONCURRENT_REPLIES``, ``REPLIES_PER_MINUTE``): try again after
    ``retry_after`` seconds. The same code as a provider's rate limit, since a client does the same."""

    code = "rate_limited"
    status = 429
    default_message = "Too many replies at once. Try again shortly."

    def __init__(self, message: str | None = None, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class MessageTooLong(StreamingError):
    code = "message_too_long"
    status = 413
    default_message = "The message is too long."


class ReplyInterrupted(StreamingError):
    code = "interrupted"
    status = 500
    default_message = "The server stopped before this reply finished."


class DatabaseUnavailable(StreamingError):
    code = "database_unavailable"
    status = 503
    default_message = "The database is unreachable. Try again in a moment."


class LogUnavailable(StreamingError):
    code = "log_unavailable"
    status = 503
    default_message = "The reply log is unreachable: the reply cannot be followed from here right now."


class RequestTooLarge(StreamingError):
    code = "request_too_large"
    status = 413
    default_message = "The request body is too large."


class UnsupportedMediaType(StreamingError):
    code = "unsupported_media_type"
    status = 415
    default_message = "Send JSON (Content-Type: application/json)."


class ProviderError(StreamingError):
    """A provider call failed. ``code`` is one of the stable codes every provider shares.

    ``retryable`` says whether calling the same model again may work (its class's default, unless the
    vendor said more: a 429 for a quota that is used up is not a transient rate limit).
    """

    code = "upstream"
    status = 502
    default_message = "The model provider failed."
    retryable = False

    def __init__(
        self,
        message: str | None = None,
        *,
        retry_after: float | None = None,
        upstream_status: int | None = None,
        retryable: bool | None = None,
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.upstream_status = upstream_status
        if retryable is not None:
            self.retryable = retryable


class RateLimited(ProviderError):
    code = "rate_limited"
    status = 429
    default_message = "The model provider is rate limiting requests. Try again shortly."
    retryable = True


class Overloaded(ProviderError):
    code = "overloaded"
    status = 503
    default_message = "The model provider is overloaded. Try again shortly."
    retryable = True


class ProviderTimeout(ProviderError):
    code = "timeout"
    status = 504
    default_message = "The model provider took too long to answer."


class ProviderAuthError(ProviderError):
    code = "auth"
    status = 502
    default_message = "The server's credentials for the model provider were refused."


class ProviderBadRequest(ProviderError):
    code = "bad_request"
    status = 400
    default_message = "The model provider refused the request."


class UpstreamError(ProviderError):
    code = "upstream"
    status = 502
    default_message = "The model provider returned an error."
    retryable = True


class ProviderConnectionError(ProviderError):
    code = "connection"
    status = 502
    default_message = "Could not reach the model provider."
    retryable = True


PROVIDER_ERRORS: dict[str, type[ProviderError]] = {
    cls.code: cls
    for cls in (
        RateLimited,
        Overloaded,
        ProviderTimeout,
        ProviderAuthError,
        ProviderBadRequest,
        UpstreamError,
        ProviderConnectionError,
    )
}
