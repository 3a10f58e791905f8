"""Each SGLang symbol the patch touches resolves in the pinned release. SGLang's
package __init__ pulls its full runtime (CUDA torch, orjson, ...), so targets are
resolved from the installed source with ast instead of importing it."""

import ast
import importlib.metadata
import importlib.util
from pathlib import Path

import pytest

from microturn_sglang import hook_targets
from microturn_sglang.hook_targets import HOOK_TARGETS, UPSTREAM_TEST_TARGETS

PKG_DIR = Path(hook_targets.__file__).resolve().parent
TESTS_DIR = PKG_DIR.parent / "tests"
SGLANG_VERSION = (PKG_DIR.parent / "SGLANG_VERSION").read_text().strip()
SPEC = importlib.util.find_spec("sglang")
pytestmark = pytest.mark.skipif(
    SPEC is None, reason=f"sglang=={SGLANG_VERSION} is not installed (pip install --no-deps sglang=={SGLANG_VERSION})"
)


def sglang_root() -> Path:
    return Path(list(SPEC.submodule_search_locations)[0])


def module_file(dotted: str):
    rel = Path(*dotted.split(".")[1:])
    for candidate in (sglang_root() / rel.with_suffix(".py"), sglang_root() / rel / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


def find_member(body, name):
    for node in body:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == name:
            return node
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
            return node
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.target.id == name:
            return node
        if isinstance(node, ast.ImportFrom) and any((a.asname or a.name) == name for a in node.names):
            return node
    return None


def resolve(path: str):
    parts = path.split(".")
    for cut in range(len(parts), 0, -1):
        mod = ".".join(parts[:cut])
        file = module_file(mod)
        if file is not None:
            break
    else:
        raise LookupError(f"no module for {path}")
    attrs = parts[cut:]
    if not attrs:
        return file, None
    node = find_member(parse(file).body, attrs[0])
    if isinstance(node, ast.ImportFrom):  # re-export: follow it
        source = node.module if node.level == 0 else ".".join(mod.split(".")[: -node.level] + [node.module or ""])
        original = next(a.name for a in node.names if (a.asname or a.name) == attrs[0])
        return resolve(".".join([source, original, *attrs[1:]]))
    for attr in attrs[1:]:
        if not isinstance(node, ast.ClassDef):
            raise LookupError(f"{path}: {attr} looked up on a non-class")
        node = find_member(node.body, attr)
    if node is None:
        raise LookupError(f"{path} not found in {file}")
    return file, node


def test_installed_sglang_is_the_pinned_release():
    assert importlib.metadata.version("sglang") == SGLANG_VERSION


@pytest.mark.parametrize("target", HOOK_TARGETS + UPSTREAM_TEST_TARGETS, ids=lambda t: t.path)
def test_target_resolves(target):
    file, node = resolve(target.path)
    assert file.is_file() and node is not None
    if target.use == "base":
        assert isinstance(node, ast.ClassDef)


def _is_sglang(module: str | None) -> bool:
    return module == "sglang" or (module or "").startswith("sglang.")


def test_every_sglang_import_of_the_plugin_is_listed():
    listed = {t.path for t in HOOK_TARGETS}
    used = set()
    for source in PKG_DIR.rglob("*.py"):
        for node in ast.walk(parse(source)):
            if isinstance(node, ast.ImportFrom) and _is_sglang(node.module):
                used.update(f"{node.module}.{a.name}" for a in node.names)
    assert used, "the plugin imports nothing from sglang?"
    # An imported class counts as listed when one of its members is (HookRegistry.register).
    missing = {u for u in used if not any(p == u or p.startswith(u + ".") for p in listed)}
    assert not missing, f"not in hook_targets.py: {sorted(missing)}"


def test_every_sglang_import_of_the_upstream_tests_is_listed():
    listed = {t.path for t in HOOK_TARGETS + UPSTREAM_TEST_TARGETS}
    used = set()
    # The upstream tests and the scheduler driver they share.
    for source in [*TESTS_DIR.glob("test_*_upstream.py"), TESTS_DIR / "sglang_session_driver.py"]:
        for node in ast.walk(parse(source)):
            if isinstance(node, ast.ImportFrom) and _is_sglang(node.module):
                used.update(f"{node.module}.{a.name}" for a in node.names)
    assert used
    missing = {u for u in used if not any(p == u or p.startswith(u + ".") for p in listed)}
    assert not missing, f"not in hook_targets.py: {sorted(missing)}"


def test_after_hook_signature_matches_the_hooked_method():
    _, node = resolve(hook_targets.UNQUANT_CREATE_MOE_RUNNER)
    assert [a.arg for a in node.args.args] == ["self", "layer", "moe_runner_config"]
    from microturn_sglang import sglang_plugin  # imports nothing from sglang at module level

    code = sglang_plugin.use_gather_gemv_runner.__code__
    assert code.co_varnames[: code.co_argcount] == ("result", "method", "layer", "moe_runner_config")


def test_entry_point_group_is_sglangs():
    _, node = resolve("sglang.srt.plugins.GENERAL_PLUGINS_GROUP")
    group = node.value.value
    assert f'[project.entry-points."{group}"]' in (PKG_DIR.parent / "pyproject.toml").read_text()


def test_moe_runner_core_interface_matches():
    _, base = resolve("sglang.srt.layers.moe.moe_runner.base.DispatchMoeRunnerCore")
    abstract = {n.name for n in base.body if isinstance(n, ast.FunctionDef) and n.decorator_list}
    ours = parse(PKG_DIR / "moe_runner_core.py")
    core = next(n for n in ours.body if isinstance(n, ast.ClassDef) and n.name == "GatherGemvRunnerCore")
    assert abstract <= {n.name for n in core.body if isinstance(n, ast.FunctionDef)}
    _, run = resolve("sglang.srt.layers.moe.moe_runner.base.DispatchMoeRunnerCore.run_from_dispatch")
    mine = next(n for n in core.body if isinstance(n, ast.FunctionDef) and n.name == "run_from_dispatch")
    assert [a.arg for a in mine.args.args] == [a.arg for a in run.args.args]


def test_grouped_runner_with_lora_hooks_is_called_as_sglang_calls_it():
    """The path for batches with LoRA hooks repeats MoeRunner.run's non-fused
    branch: the names and arguments it relies on must be upstream's."""
    _, pool = resolve("sglang.srt.layers.moe.moe_runner.base.PermuteMethodPool")
    methods = {n.name: [a.arg for a in n.args.args] for n in pool.body if isinstance(n, ast.FunctionDef)}
    assert methods["get_pre_permute"] == ["cls", "dispatch_output_format", "runner_input_format"]
    assert methods["get_post_permute"][0] == "cls" and len(methods["get_post_permute"]) == 3
    _, triton = resolve("sglang.srt.layers.moe.moe_runner.triton.TritonRunnerCore.run")
    assert [a.arg for a in triton.args.args] == ["self", "runner_input", "quant_info", "running_state", "hooks"]
    _, runner = resolve("sglang.srt.layers.moe.moe_runner.runner.MoeRunner.run")
    source = ast.unparse(runner)
    for needle in ("self.runner_core.run(runner_input, quant_info, running_state, hooks=hooks)",
                   "PermuteMethodPool.get_pre_permute(dispatch_format, runner_format)",
                   "PermuteMethodPool.get_post_permute(runner_format, combine_format)"):
        assert needle in source, needle


def _class_state(cls: ast.ClassDef) -> set:
    """Fields and `self.x` attributes a class defines (dataclass fields,
    assignments anywhere in its methods), plus its properties."""
    names = {n.target.id for n in cls.body if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name)}
    names |= {n.name for n in cls.body if isinstance(n, ast.FunctionDef)}
    for node in ast.walk(cls):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        names |= {t.attr for t in targets if isinstance(t, ast.Attribute) and ast.unparse(t.value) == "self"}
    return names


@pytest.mark.parametrize("cls_path", sorted(hook_targets.SESSION_REWIND_STATE))
def test_state_the_rewind_hook_uses_exists_upstream(cls_path):
    _, cls = resolve(cls_path)
    missing = set(hook_targets.SESSION_REWIND_STATE[cls_path]) - _class_state(cls)
    assert not missing, f"{cls_path} lacks {sorted(missing)}"


def test_rewind_hook_signatures_match_the_hooked_methods():
    from microturn_sglang import session_rewind

    _, create = resolve(hook_targets.SESSION_CREATE_REQ)
    assert [a.arg for a in create.args.args][:3] == ["self", "req", "tokenizer"]
    code = session_rewind.rewind_streaming_session.__code__
    assert code.co_varnames[: code.co_argcount] == ("original", "session", "req", "tokenizer")
    _, open_ = resolve(hook_targets.SESSION_CONTROLLER_OPEN)
    assert [a.arg for a in open_.args.args] == ["self", "recv_req"]
    code = session_rewind.remember_session_cache.__code__
    assert code.co_varnames[: code.co_argcount] == ("result", "controller", "recv_req")


def test_row_write_hook_signatures_match_the_hooked_functions():
    from microturn_sglang import session_row_write as rw

    for path, hook in ((hook_targets.ALLOC_FOR_EXTEND, rw.alloc_for_extend_marking_borrowers),
                       (hook_targets.PREFIX_KV_INDICES, rw.prefix_kv_indices_in_place),
                       (hook_targets.WRITE_CACHE_INDICES, rw.write_cache_indices_new_only)):
        _, node = resolve(path)
        code = hook.__code__
        assert code.co_varnames[1 : code.co_argcount] == tuple(a.arg for a in node.args.args), path


def test_reserve_hook_signatures_match_the_hooked_functions():
    from microturn_sglang import session_reserve as sr

    for path, hook in ((hook_targets.ALLOC_TOKEN_SLOTS, sr.alloc_token_slots_from_reservations),
                       (hook_targets.ALLOC_FOR_DECODE_DEFAULT, sr.alloc_for_decode_marking_sessions)):
        _, node = resolve(path)
        code = hook.__code__
        assert code.co_varnames[1 : code.co_argcount] == tuple(a.arg for a in node.args.args), path
    # Methods: the hook's second argument is the instance.
    for path, hook in ((hook_targets.SESSION_FREE_KV_ALIGNED, sr.free_tail_into_reservation),
                       (hook_targets.SESSION_RELEASE, sr.release_with_session),
                       (hook_targets.SESSION_CACHE_FINISHED, sr.release_on_abort),
                       (hook_targets.EVICT_TO_FREE_TOKENS, sr.reclaim_slack_before_eviction)):
        _, node = resolve(path)
        code = hook.__code__
        assert code.co_varnames[2 : code.co_argcount] == tuple(a.arg for a in node.args.args[1:]), path
    for path, hook, instance in ((hook_targets.SESSION_HELD_TOKENS, sr.session_held_with_reservations, "observer"),
                                 (hook_targets.PREFILL_BUDGET_AVAILABLE, sr.admission_counts_slack, "budget")):
        _, node = resolve(path)
        assert [a.arg for a in node.args.args] == ["self"], path
        code = hook.__code__
        assert code.co_varnames[: code.co_argcount] == ("result", instance), path
