"""The GraphQL step compiled: an HTTP request of the user (POST with a JSON body, or GET with query parameters),
reported as ``GRAPHQL <operation>``. Besides its checkpoints, a status of 400 or more fails it, and so does a
response whose JSON has ``errors`` (with their messages), as a GraphQL server answers 200 to a failed operation.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from jinja2 import TemplateError

from runner.compile.checkpoints import Checkpoint
from runner.engine.calls import RequestResult
from runner.engine.flow import StopUser
from runner.engine.user import Step, Think, VirtualUser
from runner.http.response import Response
from runner.protocols.websocket_steps import _Reader, _then, _think
from runner.scenario import templating
from runner.scenario.model import GraphqlStep

METHOD = "GRAPHQL"
_SHOWN = 3  # error messages quoted in a failure


class NoErrors(Checkpoint):
    """A GraphQL response without ``errors`` (a body that is not JSON fails too: it is no GraphQL answer)."""

    __slots__ = ()
    reads_body = True

    def __init__(self) -> None:
        super().__init__("no GraphQL errors")

    def _test(self, response: Response, variables: Mapping[str, Any]) -> str | None:
        try:
            body = response.json()
        except ValueError:
            return "the response is not JSON"
        return error_messages(body)


def error_messages(body: Any) -> str | None:
    """The failure a GraphQL result with ``errors`` is (their first messages), or None without errors. A
    subscription's ``next`` payload is such a result, and an ``error`` message's payload is the list."""
    errors = body.get("errors") if isinstance(body, dict) else None
    if not errors:
        return None
    if not isinstance(errors, list):
        errors = [errors]
    messages = [str(e.get("message", e)) if isinstance(e, dict) else str(e) for e in errors[:_SHOWN]]
    more = f" (and {len(errors) - _SHOWN} more)" if len(errors) > _SHOWN else ""
    return "GraphQL errors: " + "; ".join(messages) + more


def compile_graphql(step: GraphqlStep, ctx: Any) -> list[Step | Think]:
    url = templating.compile_template(step.graphql).render
    query = templating.compile_template(step.query).render
    variables = templating.compile_value(step.variables, native=True) if step.variables else None
    headers = templating.compile_value(step.headers, native=False) if step.headers else None
    operation = step.operation_name
    name = step.name or operation or "anonymous"
    method, timeout = step.method, step.timeout
    reader = _Reader(name, step.extract, step.check, ctx, METHOD, first=[NoErrors()])

    def run(user: VirtualUser) -> None:
        try:
            payload: dict[str, Any] = {"query": query(user.vars)}
            if variables is not None:
                payload["variables"] = variables(user.vars)
            if operation is not None:
                payload["operationName"] = operation
            extra = headers(user.vars) if headers is not None else None
            target = url(user.vars)
        except (TemplateError, ValueError, TypeError, ArithmeticError) as exc:
            result = RequestResult(METHOD, name, step.graphql, 0, 0.0, 0, f"template error: {exc}")
            user.runtime.on_request(user, result)
            if user.transactions:
                user.fail_transactions(result.failure or "")
            return
        user.in_flight = (METHOD, name)
        if method == "GET":
            query_string = {k: json.dumps(v) if k == "variables" else v for k, v in payload.items()}
            response = user.session.request("GET", target, query=query_string, headers=extra, timeout=timeout)
        else:
            response = user.session.request("POST", target, json=payload, headers=extra, timeout=timeout)
        if user.past_deadline():
            raise StopUser("the run's deadline passed")
        user.in_flight = None
        result = RequestResult.of(METHOD, name, response, None)
        signal = reader.read(user, response, result)
        deliver(user, result, signal)

    return _then(run, _think(step, ctx))


def deliver(user: VirtualUser, result: RequestResult, signal: BaseException | None) -> None:
    """A GraphQL step's result to the statistics (a failure fails the user's open transactions), then the flow
    signal its checkpoints raised, if any."""
    user.runtime.on_request(user, result)
    if result.failure is not None and user.transactions:
        user.fail_transactions(result.failure)
    if signal is not None:
        raise signal


GRAPHQL_COMPILERS: dict[type, Any] = {GraphqlStep: compile_graphql}
