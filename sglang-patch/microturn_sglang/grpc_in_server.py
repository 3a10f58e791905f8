"""Serves microturn.v1.StreamingSession from inside the SGLang server process,
next to its HTTP API, when MICROTURN_GRPC_PORT is set.

SGLang 0.5.23 builds its FastAPI `app` with `lifespan=lifespan` at import time,
so hooking `lifespan` itself would not reach the app. Instead an AROUND hook on
`_setup_and_run_http_server` (called once in the main process, after the
TokenizerManager exists and before the HTTP server starts) wraps
`app.router.lifespan_context`: the grpc.aio server then starts on the HTTP
server's event loop, the loop the TokenizerManager runs on, after SGLang's own
lifespan set up, and stops before SGLang's lifespan cleans up."""

from __future__ import annotations

import ipaddress
import logging
import multiprocessing
import os
from contextlib import asynccontextmanager

import grpc

from microturn_sglang.gen.microturn.v1 import engine_pb2_grpc
from microturn_sglang.sglang_session_servicer import SglangStreamingSessionServicer

logger = logging.getLogger(__name__)

PORT_ENV = "MICROTURN_GRPC_PORT"
HOST_ENV = "MICROTURN_GRPC_HOST"
DEFAULT_HOST = "127.0.0.1"
STOP_GRACE_S = 5.0


def grpc_port_from_env():
    """The port to serve on, or None when the gRPC service is off. 0 (any free
    port, told in app.state.microturn_grpc_port) is accepted here for tests;
    the plugin refuses it inside SGLang (check_env_for_sglang)."""
    raw = os.environ.get(PORT_ENV, "").strip()
    if not raw:
        return None
    if not raw.isdigit() or not 0 <= int(raw) <= 65535:
        raise ValueError(f"{PORT_ENV} must be a TCP port (0..65535), got {raw!r}")
    return int(raw)


def grpc_host_from_env() -> str:
    """The address to bind: a host name, an IPv4 address or an IPv6 address
    (bracketed or not), without a port."""
    raw = os.environ.get(HOST_ENV, "").strip()
    if not raw:
        return DEFAULT_HOST
    bad = ValueError(f"{HOST_ENV} must be a host name or an IP address without a port "
                     f"(an IPv6 address may be written [::1] or ::1), got {raw!r}")
    if any(c.isspace() or c in "/@" for c in raw):
        raise bad
    if raw.startswith("[") or ":" in raw:
        inner = raw[1:-1] if raw.startswith("[") and raw.endswith("]") else raw
        try:
            ipaddress.IPv6Address(inner)
        except ValueError:
            raise bad from None
    return raw


def grpc_address(host: str, port: int) -> str:
    """host:port as grpc's add_insecure_port takes it: an IPv6 host in brackets
    ("::" -> "[::]:50061"; ":::50061" does not bind)."""
    if ":" in host and not (host.startswith("[") and host.endswith("]")):
        host = f"[{host}]"
    return f"{host}:{port}"


def check_env_for_sglang():
    """Validates MICROTURN_GRPC_PORT and MICROTURN_GRPC_HOST as the plugin runs
    inside SGLang; returns the port, or None when the gRPC service is off.
    Raises ValueError naming the variable. Port 0 is refused here: the sidecar
    is configured with the port and could never find a random one."""
    port = grpc_port_from_env()
    if port is None:
        return None
    if port == 0:
        raise ValueError(f"{PORT_ENV} must be a fixed TCP port (1..65535) inside SGLang, got '0': "
                         "the sidecar could never find a randomly chosen port")
    grpc_host_from_env()
    return port


def in_main_process() -> bool:
    """The HTTP server, and with it the TokenizerManager, runs in SGLang's main
    process; scheduler and detokenizer processes also load plugins."""
    return multiprocessing.parent_process() is None


async def start_session_grpc(tokenizer_manager, host: str, port: int):
    """Returns the started grpc.aio server and the port it is bound to."""
    server = grpc.aio.server()
    engine_pb2_grpc.add_StreamingSessionServicer_to_server(SglangStreamingSessionServicer(tokenizer_manager), server)
    address = grpc_address(host, port)
    refused = f"microturn: cannot bind the StreamingSession gRPC server to {address}"
    try:
        bound = server.add_insecure_port(address)
    except RuntimeError as err:  # grpcio raises where it cannot bind; older releases returned 0
        raise RuntimeError(refused) from err
    if bound == 0:
        raise RuntimeError(refused)
    await server.start()
    return server, bound


def with_session_grpc(inner_lifespan, host: str, port: int):
    @asynccontextmanager
    async def lifespan(fast_api_app):
        async with inner_lifespan(fast_api_app) as state:
            if not getattr(fast_api_app, "is_single_tokenizer_mode", False):
                # Each tokenizer worker would race for the one port; SGLang's own
                # gRPC server is single-tokenizer only for the same reason.
                logger.warning("microturn: %s ignored: --tokenizer-worker-num > 1", PORT_ENV)
                yield state
                return
            from sglang.srt.entrypoints.http_server import get_global_state

            server, bound = await start_session_grpc(get_global_state().tokenizer_manager, host, port)
            fast_api_app.state.microturn_grpc_port = bound
            logger.info("microturn: StreamingSession gRPC serving on %s", grpc_address(host, bound))
            try:
                yield state
            finally:
                await server.stop(STOP_GRACE_S)
                logger.info("microturn: StreamingSession gRPC stopped")

    return lifespan


def serve_session_grpc_with_http(original_fn, *args, **kwargs):
    """AROUND hook on http_server._setup_and_run_http_server."""
    port = grpc_port_from_env()
    if port is not None:
        from sglang.srt.entrypoints.http_server import app

        host = grpc_host_from_env()
        app.router.lifespan_context = with_session_grpc(app.router.lifespan_context, host, port)
    return original_fn(*args, **kwargs)
