"""The JSON API's plumbing: authentication (the session, or an API token), CSRF, methods, and errors
mapped to responses in one place."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

from django.core.exceptions import RequestDataTooBig
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse, UnreadablePostError
from django.http.multipartparser import MultiPartParserError
from django.http.response import HttpResponseBase
from django.middleware.csrf import CsrfViewMiddleware
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.debug import sensitive_variables

from streaming import database, tokens, upkeep
from streaming.exceptions import (
    DatabaseUnavailable,
    InvalidRequest,
    MethodNotAllowed,
    NotAuthenticated,
    PermissionDenied,
    RequestTooLarge,
    StreamingError,
)
from streaming.models import ApiToken

logger = logging.getLogger(__name__)

View = Callable[..., HttpResponseBase]


def error_response(error: StreamingError) -> JsonResponse:
    response = JsonResponse({"error": error.as_dict()}, status=error.status)
    retry_after = getattr(error, "retry_after", None)  # (a provider's rate limit, or the user's own)
    if retry_after is not None:
        response["Retry-After"] = str(max(1, round(retry_after)))
    if isinstance(error, NotAuthenticated):
        response["WWW-Authenticate"] = "Bearer"  # (a 401 names a scheme; a session has none to name)
    return response


class _CsrfCheck(CsrfViewMiddleware):
    def _reject(self, request: HttpRequest, reason: str) -> HttpResponse:
        return error_response(
            PermissionDenied(f"CSRF check failed: {reason.rstrip('.')}. Send the X-CSRFToken header.")
        )


def _csrf_failure(request: HttpRequest) -> HttpResponse | None:
    check = _CsrfCheck(lambda req: HttpResponse())
    check.process_request(request)
    return check.process_view(request, lambda req: HttpResponse(), (), {})


@sensitive_variables("raw")
def _authenticate_token(request: HttpRequest) -> bool:
    """Whether the request carries an API token (``Authorization: Bearer``); if so, ``request.user`` is
    its owner, and a wrong or revoked one is a 401. A traceback through here shows no token."""
    raw = tokens.bearer_token(request)
    if raw is None:
        return False
    user = ApiToken.objects.user_for(raw) if raw else None
    if user is None:
        raise NotAuthenticated("This API token is not valid, or was revoked.")
    request.user = user
    return True


def api_view(methods: list[str]) -> Callable[[View], View]:
    """A JSON endpoint for logged-in users: 401/403/405 and domain errors come back as JSON.

    A request carries the user's session, or an API token (``Authorization: Bearer <token>``, which
    then decides, whatever the cookies say). With the session, unsafe methods need the CSRF header, as
    Django's session authentication expects; the check runs here (not in the middleware) so that its
    failure is JSON too. A token needs none: a browser never sends one by itself, so a page of another
    site cannot make it. The view runs on one of the app's database threads (``streaming.database``),
    the session, token and user lookups included: under ASGI the request's own thread would open and
    close a connection for every request.
    """

    def decorator(view: View) -> View:
        def respond(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
            try:
                if request.method not in methods:
                    response = error_response(MethodNotAllowed(f"Use {' or '.join(methods)}."))
                    response["Allow"] = ", ".join(methods)
                    return response
                if not _authenticate_token(request):
                    if not request.user.is_authenticated:
                        return error_response(NotAuthenticated())
                    if request.method not in ("GET", "HEAD", "OPTIONS"):
                        failure = _csrf_failure(request)
                        if failure is not None:
                            return failure
                return view(request, *args, **kwargs)
            except StreamingError as error:
                return error_response(error)
            except (MultiPartParserError, UnreadablePostError):  # (the CSRF check reads a form body)
                return error_response(InvalidRequest("The request body could not be read."))
            except RequestDataTooBig:
                return error_response(RequestTooLarge())
            except (OperationalError, InterfaceError):
                logger.warning("streaming: the database is unreachable", exc_info=True)
                return error_response(DatabaseUnavailable())

        @csrf_exempt
        @functools.wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
            upkeep.active()
            return database.run(lambda: respond(request, *args, **kwargs))

        return wrapper

    return decorator
