"""Marks tests that run against SGLang's own modules rather than stand-ins.

Importing `sglang.srt` needs torch >= 2 and SGLang's Python dependencies
(`requirements-sglang-runtime.txt`); Debian's torch 1.13 cannot. Where they are
missing these tests skip and say why, so the rest of the suite still runs."""

import importlib

import pytest


def _probe() -> str | None:
    try:
        importlib.import_module("sglang.srt.session.session_controller")
    except Exception as err:  # any import failure means: no SGLang runtime here
        return f"SGLang's runtime does not import here ({type(err).__name__}: {err})"
    return None


SKIP_REASON = _probe()

requires_sglang = pytest.mark.skipif(SKIP_REASON is not None, reason=SKIP_REASON or "")
