"""The AROUND hook on http_server._setup_and_run_http_server starts the
StreamingSession gRPC server inside the HTTP server's lifespan and stops it at
shutdown, against a stand-in for SGLang's http_server module (the real one
imports SGLang's CUDA runtime; test_hook_targets.py checks the real names)."""

import asyncio
import socket
import sys
import types
from contextlib import asynccontextmanager

import grpc
import pytest
from sglang_fakes import FakeTokenizerManager, fake_io_struct

from microturn_sglang import grpc_in_server
from microturn_sglang.engine_servicer import PROTOCOL_VERSION
from microturn_sglang.gen.microturn.v1 import engine_pb2, engine_pb2_grpc


class FakeApp:
    """What the hook touches of SGLang's FastAPI app: router.lifespan_context
    (Starlette enters it as `async with lifespan_context(app)`), state, and
    the is_single_tokenizer_mode flag _setup_and_run_http_server sets."""

    def __init__(self, events, single=True):
        @asynccontextmanager
        async def sglang_lifespan(app):
            events.append("sglang lifespan up")
            yield
            events.append("sglang lifespan down")

        self.router = types.SimpleNamespace(lifespan_context=sglang_lifespan)
        self.state = types.SimpleNamespace()
        self.is_single_tokenizer_mode = single


@pytest.fixture
def http_server(monkeypatch):
    events = []
    tm = FakeTokenizerManager()
    tm.replies = ["hi there"]
    module = types.SimpleNamespace(app=FakeApp(events),
                                   get_global_state=lambda: types.SimpleNamespace(tokenizer_manager=tm))
    monkeypatch.setitem(sys.modules, "sglang.srt.entrypoints.http_server", module)
    monkeypatch.setitem(sys.modules, "sglang.srt.managers.io_struct", fake_io_struct())
    monkeypatch.setenv("MICROTURN_GRPC_PORT", "0")
    monkeypatch.delenv("MICROTURN_GRPC_HOST", raising=False)
    return module, events


def serve_http(app, events, while_up):
    """What _setup_and_run_http_server does with the app, reduced to the
    lifespan: uvicorn enters it on its loop, serves, and leaves it."""
    async def server():
        async with app.router.lifespan_context(app):
            events.append("serving")
            await while_up()
        events.append("stopped")

    def setup_and_run_http_server(*args, **kwargs):
        events.append(("setup", args, kwargs))
        asyncio.run(server())
        return "ran"

    return setup_and_run_http_server


def port_open(port):
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_lifespan_serves_streaming_session_next_to_http(http_server):
    module, events = http_server
    app = module.app
    seen = {}

    async def while_up():
        port = app.state.microturn_grpc_port
        seen["port"] = port
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = engine_pb2_grpc.StreamingSessionStub(channel)
            health = await stub.Health(engine_pb2.HealthRequest())
            assert health.serving and health.capabilities.engine == "sglang-patch"
            sid = (await stub.OpenSession(engine_pb2.OpenSessionRequest(protocol_version=PROTOCOL_VERSION))).session_id
            out = [r async for r in stub.Append(engine_pb2.AppendRequest(session_id=sid, text="yo", max_output_tokens=32))]
            seen["text"] = "".join(r.delta.text for r in out[:-1])

    original = serve_http(app, events, while_up)
    assert grpc_in_server.serve_session_grpc_with_http(original, "server_args", tokenizer_manager="tm") == "ran"
    assert events[0] == ("setup", ("server_args",), {"tokenizer_manager": "tm"})
    assert events[1:] == ["sglang lifespan up", "serving", "sglang lifespan down", "stopped"]
    assert seen["text"] == "hi there" and seen["port"] > 0
    assert not port_open(seen["port"])  # stopped with the HTTP server


def test_no_port_leaves_the_lifespan_alone(http_server, monkeypatch):
    module, events = http_server
    monkeypatch.delenv("MICROTURN_GRPC_PORT")
    before = module.app.router.lifespan_context
    grpc_in_server.serve_session_grpc_with_http(lambda: None)
    assert module.app.router.lifespan_context is before


def test_multi_tokenizer_mode_serves_http_only(http_server):
    module, events = http_server
    module.app.is_single_tokenizer_mode = False

    async def while_up():
        assert not hasattr(module.app.state, "microturn_grpc_port")

    grpc_in_server.serve_session_grpc_with_http(serve_http(module.app, events, while_up))
    assert events[1:] == ["sglang lifespan up", "serving", "sglang lifespan down", "stopped"]


def test_bad_port_is_refused_with_a_clear_message(monkeypatch):
    monkeypatch.setenv("MICROTURN_GRPC_PORT", "70000")
    with pytest.raises(ValueError, match="MICROTURN_GRPC_PORT must be a TCP port"):
        grpc_in_server.grpc_port_from_env()
    monkeypatch.setenv("MICROTURN_GRPC_PORT", "grpc")
    with pytest.raises(ValueError, match="got 'grpc'"):
        grpc_in_server.grpc_port_from_env()
    monkeypatch.setenv("MICROTURN_GRPC_PORT", " ")
    assert grpc_in_server.grpc_port_from_env() is None


@pytest.mark.parametrize("host, address", [
    ("127.0.0.1", "127.0.0.1:50061"),
    ("localhost", "localhost:50061"),
    ("0.0.0.0", "0.0.0.0:50061"),
    ("::", "[::]:50061"),
    ("::1", "[::1]:50061"),
    ("[::1]", "[::1]:50061"),
    ("fe80::1%eth0", "[fe80::1%eth0]:50061"),
])
def test_grpc_address_brackets_ipv6_hosts(host, address):
    assert grpc_in_server.grpc_address(host, 50061) == address


def test_grpc_host_from_env(monkeypatch):
    monkeypatch.delenv("MICROTURN_GRPC_HOST", raising=False)
    assert grpc_in_server.grpc_host_from_env() == "127.0.0.1"
    for ok in (" 0.0.0.0 ", "::", "[::1]", "engine.internal", "fe80::1%eth0"):
        monkeypatch.setenv("MICROTURN_GRPC_HOST", ok)
        assert grpc_in_server.grpc_host_from_env() == ok.strip()
    for bad in ("0.0.0.0:50061", "[::1]:50061", "localhost:50061", "local host", "[::1", "http://x"):
        monkeypatch.setenv("MICROTURN_GRPC_HOST", bad)
        with pytest.raises(ValueError, match="MICROTURN_GRPC_HOST must be a host name or an IP address"):
            grpc_in_server.grpc_host_from_env()


def test_port_zero_is_for_tests_only(monkeypatch):
    """grpc_port_from_env (the hook, these tests) takes 0 for any free port;
    inside SGLang the plugin refuses it: the sidecar could not find the port."""
    monkeypatch.delenv("MICROTURN_GRPC_HOST", raising=False)
    monkeypatch.setenv("MICROTURN_GRPC_PORT", "0")
    assert grpc_in_server.grpc_port_from_env() == 0
    with pytest.raises(ValueError, match="MICROTURN_GRPC_PORT must be a fixed TCP port"):
        grpc_in_server.check_env_for_sglang()
    monkeypatch.setenv("MICROTURN_GRPC_PORT", "50061")
    assert grpc_in_server.check_env_for_sglang() == 50061
    monkeypatch.delenv("MICROTURN_GRPC_PORT")
    monkeypatch.setenv("MICROTURN_GRPC_HOST", "not a host")  # not checked while the service is off
    assert grpc_in_server.check_env_for_sglang() is None


def ipv6_loopback_available():
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.parametrize("host", ["::1", "[::1]", "::"])
def test_serves_on_an_ipv6_host(http_server, monkeypatch, host):
    if not ipv6_loopback_available():
        pytest.skip("IPv6 loopback (::1) is not available on this machine")
    module, events = http_server
    monkeypatch.setenv("MICROTURN_GRPC_HOST", host)
    seen = {}

    async def while_up():
        port = module.app.state.microturn_grpc_port
        async with grpc.aio.insecure_channel(f"[::1]:{port}") as channel:
            health = await engine_pb2_grpc.StreamingSessionStub(channel).Health(engine_pb2.HealthRequest(), timeout=10)
            seen["serving"] = health.serving

    grpc_in_server.serve_session_grpc_with_http(serve_http(module.app, events, while_up))
    assert seen["serving"]


def test_unbindable_address_is_a_clear_error():
    async def main():
        with pytest.raises(RuntimeError, match="cannot bind the StreamingSession gRPC server to no such host:0"):
            await grpc_in_server.start_session_grpc(FakeTokenizerManager(), "no such host", 0)

    asyncio.run(main())


def test_real_fastapi_app_under_uvicorn_with_uvloop(monkeypatch):
    """SGLang's default path: a FastAPI app built with lifespan=..., served by
    uvicorn.Server(loop="uvloop"). The hook must reach Starlette's lifespan and
    grpc.aio must run on uvloop beside the HTTP API."""
    fastapi = pytest.importorskip("fastapi")
    uvicorn = pytest.importorskip("uvicorn")
    pytest.importorskip("uvloop")
    import threading
    import urllib.request

    events = []

    @asynccontextmanager
    async def lifespan(fast_api_app):
        events.append("sglang lifespan up")
        events.append(type(asyncio.get_running_loop()).__module__.split(".")[0])
        yield
        events.append("sglang lifespan down")

    app = fastapi.FastAPI(lifespan=lifespan)
    app.is_single_tokenizer_mode = True

    @app.get("/health")
    async def health():
        return {"ok": True}

    tm = FakeTokenizerManager()
    tm.replies = ["over uvloop"]
    module = types.SimpleNamespace(app=app, get_global_state=lambda: types.SimpleNamespace(tokenizer_manager=tm))
    monkeypatch.setitem(sys.modules, "sglang.srt.entrypoints.http_server", module)
    monkeypatch.setitem(sys.modules, "sglang.srt.managers.io_struct", fake_io_struct())
    monkeypatch.setenv("MICROTURN_GRPC_PORT", "0")
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, loop="uvloop", log_level="warning"))
    seen = {}

    def client():
        try:
            for _ in range(500):
                if server.started and hasattr(app.state, "microturn_grpc_port"):
                    break
                threading.Event().wait(0.02)
            http_port = server.servers[0].sockets[0].getsockname()[1]
            with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/health", timeout=10) as r:
                seen["http"] = r.read()
            seen["port"] = port = app.state.microturn_grpc_port
            with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                stub = engine_pb2_grpc.StreamingSessionStub(channel)
                sid = stub.OpenSession(engine_pb2.OpenSessionRequest(protocol_version=PROTOCOL_VERSION),
                                       timeout=10).session_id
                out = list(stub.Append(engine_pb2.AppendRequest(session_id=sid, text="hi", max_output_tokens=32),
                                       timeout=10))
                seen["text"] = "".join(r.delta.text for r in out[:-1])
                seen["done"] = out[-1].done
        finally:
            server.should_exit = True

    def setup_and_run_http_server(*args, **kwargs):
        thread = threading.Thread(target=client)
        thread.start()
        server.run()
        thread.join()

    grpc_in_server.serve_session_grpc_with_http(setup_and_run_http_server)
    assert seen["http"] == b'{"ok":true}'
    assert seen["text"] == "over uvloop" and seen["done"].finish_reason == engine_pb2.FINISH_REASON_STOP
    assert events == ["sglang lifespan up", "uvloop", "sglang lifespan down"]
    assert not port_open(seen["port"])
