"""The error answers of the management API, declared in its OpenAPI document.

Some come from code every route of a kind shares, and :class:`SharedErrors` declares them
on each operation of that kind: 401 and 403 on every route behind the token, 400 (malformed
JSON) and 413 (over the body cap) on every route that takes a JSON body. The others
belong to one view, which declares them with :func:`errors`: 404 where it looks up what
the path names, 409 where a name can be taken or a state forbids the action, 503 where
Redis must take the request.
"""

from __future__ import annotations

from collections.abc import Callable
from http import HTTPStatus
from typing import Any, TypeVar

from apispec import BasePlugin
from flask_smorest import Blueprint

F = TypeVar("F", bound=Callable[..., Any])


def response_name(status: int) -> str:
    """flask-smorest's component name of the error answer for ``status``."""
    return HTTPStatus(status).name


class SharedErrors(BasePlugin):
    """Declares the errors that shared code answers (token check, JSON body, body cap)."""

    def operation_helper(
        self, path: str | None = None, operations: dict | None = None, **kwargs: Any
    ) -> None:
        for operation in (operations or {}).values():
            responses = operation.setdefault("responses", {})
            for status in _shared_statuses(operation):
                responses.setdefault(status, response_name(status))


def _shared_statuses(operation: dict) -> list[int]:
    protected = operation.get("security") != []
    statuses = [401, 403] if protected else []  # no or bad token; a token without the scope
    if "requestBody" in operation:
        statuses.append(400)
        if protected:  # the token check sets the body cap of management calls
            statuses.append(413)
    return statuses


def errors(blp: Blueprint, *statuses: int) -> Callable[[F], F]:
    """Declare on a view the error answers its own lookups and checks give."""

    def decorate(func: F) -> F:
        for status in statuses:
            func = blp.alt_response(status, response=response_name(status))(func)
        return func

    return decorate
