"""The compiler's one entry to the steps of other protocols (WebSocket, server-sent events, GraphQL, gRPC)."""

from __future__ import annotations

from typing import Any

from runner.engine.user import Step, Think
from runner.protocols.graphql_steps import GRAPHQL_COMPILERS
from runner.protocols.graphql_ws_steps import SUBSCRIBE_COMPILERS
from runner.protocols.grpc_compile import GRPC_COMPILERS
from runner.protocols.sse_steps import SSE_COMPILERS
from runner.protocols.websocket_steps import WS_COMPILERS

COMPILERS: dict[type, Any] = {
    **WS_COMPILERS,
    **SSE_COMPILERS,
    **GRAPHQL_COMPILERS,
    **SUBSCRIBE_COMPILERS,
    **GRPC_COMPILERS,
}


def compile_protocol_step(step: Any, ctx: Any) -> list[Step | Think] | None:
    """The compiled form of a protocol step, or None for any other step. ``ctx`` is the compiler's context
    (``default_think``, ``compile_think``, ``shared.script``, ``shared.checkpoints``)."""
    compile_kind = COMPILERS.get(type(step))
    return compile_kind(step, ctx) if compile_kind is not None else None  # type: ignore[no-any-return]
