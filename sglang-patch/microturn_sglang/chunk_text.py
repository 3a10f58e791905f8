"""How a micro-turn's input reads as text for a text model: the time marker,
then the context delivered at this boundary, then the user's text. The same
rendering as the sidecar's packages/sidecar/src/engines/chunk-text.ts, so a
model hears one format whichever engine serves it; tests/test_chunk_text.py
uses that file's examples."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from microturn_sglang.gen.microturn.v1 import common_pb2

_SOURCE_TAGS = {
    common_pb2.CONTEXT_SOURCE_SYSTEM: "system",
    common_pb2.CONTEXT_SOURCE_BACKGROUND: "background",
    common_pb2.CONTEXT_SOURCE_TOOL: "tool",
}


def render_time_marker(start_ms: int) -> str:
    """`<t=12.4s>` for 12 400 ms. Rounds like JavaScript's toFixed(1): half up
    on the exact binary value of start_ms / 1000 (Python's format rounds half
    to even, which would print 61.25 s as 61.2 where the sidecar prints 61.3)."""
    seconds = Decimal(start_ms / 1000).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)
    return f"<t={seconds}s>"


def render_context_item(item: common_pb2.ContextItem) -> str:
    tag = _SOURCE_TAGS.get(item.source, "context")
    ref = f' ref="{item.ref_id.replace(chr(34), chr(39))}"' if item.ref_id else ""
    return f"<{tag}{ref}>{item.text}</{tag}>"


def render_chunk_text(start_ms: int, text: str = "", context=()) -> str:
    """Audio and video are not rendered: this path serves text models."""
    return render_time_marker(start_ms) + "".join(render_context_item(i) for i in context) + text
