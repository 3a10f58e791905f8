"""The examples of packages/sidecar/src/engines/chunk-text.test.ts, so both
renderings are held to the same strings."""

from microturn_sglang.chunk_text import render_chunk_text, render_time_marker
from microturn_sglang.gen.microturn.v1 import common_pb2, engine_pb2


def test_time_marker_then_context_in_order_then_text():
    request = engine_pb2.AppendRequest(
        seq=62, start_ms=12_400, duration_ms=200, text="and then?",
        context=[
            common_pb2.ContextItem(source=common_pb2.CONTEXT_SOURCE_TOOL, text='{"temp":21}', ref_id='call "7"'),
            common_pb2.ContextItem(source=common_pb2.CONTEXT_SOURCE_SYSTEM, text="be brief", ref_id=""),
        ],
    )
    assert render_chunk_text(request.start_ms, request.text, request.context) == (
        """<t=12.4s><tool ref="call '7'">{"temp":21}</tool><system>be brief</system>and then?"""
    )


def test_chunk_without_text_is_its_time_marker_alone():
    assert render_chunk_text(0) == "<t=0.0s>"
    assert render_time_marker(61_250) == "<t=61.3s>"


def test_rounding_follows_javascript_to_fixed():
    # (1150 / 1000).toFixed(1) is "1.1" in JavaScript: the double is just below 1.15.
    assert render_time_marker(1_150) == "<t=1.1s>"
    assert render_time_marker(1_050) == "<t=1.1s>"
    assert render_time_marker(3_600_000) == "<t=3600.0s>"


def test_unknown_source_and_background_tags():
    items = [
        common_pb2.ContextItem(source=common_pb2.CONTEXT_SOURCE_BACKGROUND, text="done", ref_id="task-1"),
        common_pb2.ContextItem(source=common_pb2.CONTEXT_SOURCE_UNSPECIFIED, text="x"),
    ]
    assert render_chunk_text(200, "", items) == '<t=0.2s><background ref="task-1">done</background><context>x</context>'
