"""The SGLang APIs the in-server StreamingSession servicer calls have, in the
pinned release, the signatures, fields and behaviour sglang_fakes.py copies.
Read from the installed source with ast (see test_hook_targets.py)."""

import ast

import pytest
from test_hook_targets import SPEC, module_file, parse, resolve

from microturn_sglang.hook_targets import (
    HTTP_SERVER,
    HTTP_SETUP_AND_RUN,
    IO_STRUCT,
    TOKENIZER_CONTROL,
    TOKENIZER_MANAGER,
    TOKENIZER_MANAGER_ATTRS,
)

pytestmark = pytest.mark.skipif(SPEC is None, reason="sglang is not installed")


def args_of(path):
    _, node = resolve(path)
    return [a.arg for a in node.args.args], [ast.unparse(d) for d in node.args.defaults]


def fields_of(path):
    _, node = resolve(path)
    return {n.target.id for n in node.body if isinstance(n, ast.AnnAssign)}


def source_of(path):
    _, node = resolve(path)
    return ast.unparse(node)


def test_tokenizer_manager_calls_take_obj_and_optional_request():
    for method in (TOKENIZER_CONTROL + ".open_session", TOKENIZER_CONTROL + ".close_session",
                   TOKENIZER_MANAGER + ".generate_request"):
        assert args_of(method) == (["self", "obj", "request"], ["None"]), method
    assert args_of(TOKENIZER_MANAGER + ".abort_request") == (["self", "rid", "abort_all"], ["''", "False"])
    assert args_of(TOKENIZER_MANAGER + ".is_ready") == (["self"], [])
    _, cls = resolve(TOKENIZER_MANAGER)
    assert [ast.unparse(b) for b in cls.bases][0] == "TokenizerControlMixin"


def test_request_types_have_the_fields_the_servicer_sets():
    assert {"capacity_of_str_len", "session_id", "streaming", "timeout"} <= fields_of(IO_STRUCT + ".OpenSessionReqInput")
    assert {"session_id"} <= fields_of(IO_STRUCT + ".CloseSessionReqInput")
    assert {"rid", "text", "session_params", "sampling_params", "stream"} <= fields_of(IO_STRUCT + ".GenerateReqInput")


def test_tokenizer_manager_sets_the_attributes_the_servicer_reads():
    _, init = resolve(TOKENIZER_MANAGER + ".__init__")
    assigned = {t.attr for n in ast.walk(init) if isinstance(n, (ast.Assign, ast.AnnAssign))
                for t in (n.targets if isinstance(n, ast.Assign) else [n.target])
                if isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name) and t.value.id == "self"}
    # __init__ delegates part of its set-up to helpers; look in the whole class too.
    _, cls = resolve(TOKENIZER_MANAGER)
    for node in ast.walk(cls):
        if isinstance(node, ast.Assign):
            assigned.update(t.attr for t in node.targets if isinstance(t, ast.Attribute))
    missing = set(TOKENIZER_MANAGER_ATTRS) - assigned
    assert not missing


def test_open_session_behaviour_the_fake_copies():
    src = source_of(TOKENIZER_CONTROL + ".open_session")
    assert "--enable-streaming-session" in src and "raise ValueError" in src
    assert "return None" in src  # an id already being opened
    handler = source_of(TOKENIZER_MANAGER + "._handle_open_session_req_output")
    assert "recv_obj.session_id if recv_obj.success else None" in handler


def test_scheduler_refusal_messages_the_servicer_maps():
    scheduler = module_file("sglang.srt.managers.scheduler").read_text()
    assert "does not exist" in scheduler and "close was requested for session" in scheduler
    session = module_file("sglang.srt.session.session_controller").read_text()
    assert "Streaming session already has an active request." in session
    assert "Streaming sessions do not support offset." in session  # why Rewind is refused
    tm = module_file("sglang.srt.managers.tokenizer_manager").read_text()
    assert "model's context length" in tm and "incremental_streaming_output" in tm
    # A streamed abort with a status code is yielded, not raised.
    assert "return out" in source_of(TOKENIZER_MANAGER + "._handle_abort_finish_reason")


def test_http_server_lifespan_is_the_apps_and_the_hook_target_runs_the_server():
    tree = parse(module_file(HTTP_SERVER))
    app = next(n for n in tree.body if isinstance(n, ast.Assign) and ast.unparse(n.targets[0]) == "app")
    assert "lifespan=lifespan" in ast.unparse(app.value)
    setup = source_of(HTTP_SETUP_AND_RUN)
    assert "set_global_state" in setup and "app.is_single_tokenizer_mode = True" in setup
    assert "_setup_and_run_http_server(" in source_of(HTTP_SERVER + ".launch_server")
    lifespan = source_of(HTTP_SERVER + ".lifespan")
    assert "is_single_tokenizer_mode" in lifespan and "yield" in lifespan
