"""The v1 -> Agent Protocol v2 converter, filters and cursors (pure, no I/O)."""

from __future__ import annotations

import pytest

from aegra.domain.errors import Invalid
from aegra.domain.protocol_events import RunConverter
from aegra.domain.protocol_filter import (
    RUN_SPAN,
    Filter,
    matches,
    parse_filter,
    position_of,
    seq_of,
)

META = {"langgraph_node": "chat", "langgraph_step": 1, "tags": ["x"]}


def chunk(text, *, last=False, kind="AIMessageChunk", mid="m1"):
    return {"type": kind, "id": mid, "content": text,
            "chunk_position": "last" if last else None}


def feed(conv, *events):
    out = []
    for name, data in events:
        out.extend(conv.feed(name, data))
    return out


def test_a_run_becomes_lifecycle_values_updates_and_a_message_stream():
    conv = RunConverter()
    out = feed(conv,
               ("metadata", {"run_id": "r", "attempt": 1}),
               ("values", {"messages": []}),
               ("messages", [chunk("the"), META]),
               ("messages", [chunk(" fox", last=True), META]),
               ("updates", {"chat": {"messages": ["..."]}}),
               ("messages/partial", [{}]),  # Studio's mode: no protocol channel
               ("end", {"status": "success"}))
    assert out == [
        ("lifecycle", [], {"event": "started"}),
        ("values", [], {"messages": []}),
        ("messages", [], {"event": "message-start", "role": "ai", "id": "m1",
                          "metadata": {"langgraph_node": "chat", "langgraph_step": 1}}),
        ("messages", [], {"event": "content-block-start", "index": 0,
                          "content": {"type": "text", "text": ""}}),
        ("messages", [], {"event": "content-block-delta", "index": 0,
                          "delta": {"type": "text-delta", "text": "the"}}),
        ("messages", [], {"event": "content-block-delta", "index": 0,
                          "delta": {"type": "text-delta", "text": " fox"}}),
        ("messages", [], {"event": "content-block-finish", "index": 0,
                          "content": {"type": "text", "text": "the fox"}}),
        ("messages", [], {"event": "message-finish"}),
        ("updates", [], {"node": "chat", "values": {"messages": ["..."]}}),
        ("lifecycle", [], {"event": "completed"}),
    ]
    assert conv.ended and conv.feed("values", {}) == []


def test_a_whole_message_after_its_chunks_adds_only_what_is_new():
    conv = RunConverter()
    out = feed(conv, ("messages", [chunk("ab"), {}]),
               ("messages", [{"type": "ai", "id": "m1", "content": "abc"}, {}]),
               ("messages", [{"type": "tool", "id": "t1", "content": "x"}, {}]))
    deltas = [d["delta"]["text"] for _, _, d in out if d["event"] == "content-block-delta"]
    assert deltas == ["ab", "c"]
    assert out[-1][2] == {"event": "message-finish"}


def test_an_interrupt_is_announced_when_the_run_pauses():
    conv = RunConverter(graph_name="hitl")
    out = feed(conv, ("metadata", {}),
               ("updates", {"__interrupt__": [{"value": {"q": 1}, "id": "i1"}]}),
               ("values", {"x": 1, "__interrupt__": [{"value": {"q": 1}, "id": "i1"}]}))
    assert [m for m, _, _ in out] == ["lifecycle", "values"]
    assert out[1][2] == {"x": 1}
    end = conv.feed("end", {"status": "success"})
    assert end == [
        ("input.requested", [], {"interrupt_id": "i1", "payload": {"q": 1},
                                 "value": {"q": 1}}),
        ("lifecycle", [], {"event": "interrupted", "graph_name": "hitl"}),
    ]


def test_a_failed_run_says_why_and_closes_what_was_open():
    conv = RunConverter()
    out = feed(conv, ("metadata", {}),
               ("values|sub:1", {"a": 1}),
               ("messages|sub:1", [chunk("par"), {}]),
               ("error", {"error": "ValueError", "message": "boom"}),
               ("end", {"status": "error"}))
    methods = [(m, ns, d.get("event")) for m, ns, d in out]
    assert methods == [
        ("lifecycle", [], "started"),
        ("lifecycle", ["sub:1"], "started"),
        ("values", ["sub:1"], None),
        ("messages", ["sub:1"], "message-start"),
        ("messages", ["sub:1"], "content-block-start"),
        ("messages", ["sub:1"], "content-block-delta"),
        ("messages", ["sub:1"], "content-block-finish"),
        ("messages", ["sub:1"], "message-finish"),
        ("lifecycle", ["sub:1"], "failed"),
        ("lifecycle", [], "failed"),
    ]
    assert out[-1][2]["error"] == "boom"


@pytest.mark.parametrize(("status", "expected"), [
    ("success", ["started", "completed"]),
    ("error", ["started", "failed"]),
    ("timeout", ["started", "failed"]),
    ("interrupted", ["started", "interrupted"]),
])
def test_an_expired_run_is_told_from_its_row(status, expected):
    out = RunConverter().synthetic(status)
    assert [d["event"] for _, _, d in out] == expected


def test_a_cancelled_run_fails_for_its_stream():
    conv = RunConverter()
    out = feed(conv, ("metadata", {}), ("end", {"status": "interrupted"}))
    assert out[-1][2] == {"event": "failed", "error": "run cancelled"}


def test_filters_parse_and_name_the_bad_field():
    flt = parse_filter({"channels": ["values", "custom:x"], "namespaces": [["sub"]],
                        "depth": 1, "since": 5})
    assert flt == Filter(channels=frozenset({"values", "custom:x"}),
                         namespaces=(("sub",),), depth=1, since=5)
    for body, field in [({"channels": ["nope"]}, "channels"), ({}, "channels"),
                        ({"channels": ["values"], "depth": True}, "depth"),
                        ({"channels": ["values"], "namespaces": [[1]]}, "namespaces"),
                        ([], "body")]:
        with pytest.raises(Invalid) as err:
            parse_filter(body)
        assert err.value.field == field
    with pytest.raises(Invalid) as err:
        parse_filter({"channels": [3]}, prefix="params.")
    assert err.value.field == "params.channels"


def test_matching_by_channel_namespace_prefix_and_depth():
    flt = parse_filter({"channels": ["values", "input", "custom"], "namespaces": [["sub"]],
                        "depth": 0})
    assert matches(flt, ("values", ["sub:1"], {}))
    assert not matches(flt, ("values", ["sub:1", "inner:2"], {}))
    assert not matches(flt, ("values", [], {}))
    assert matches(flt, ("custom", ["sub:9"], {"name": "x", "payload": 1}))
    assert not matches(flt, ("updates", ["sub:1"], {}))
    named = parse_filter({"channels": ["custom:x", "input"]})
    assert matches(named, ("custom", [], {"name": "x"}))
    assert not matches(named, ("custom", [], {"payload": 1}))
    assert matches(named, ("input.requested", [], {}))


def test_seq_is_an_absolute_cursor_per_thread():
    assert seq_of(0, 1) == 1
    assert seq_of(3, 7) == 3 * RUN_SPAN + 7
    assert position_of(seq_of(3, 7)) == 3 == position_of(seq_of(3, 0))
    assert seq_of(2**17 - 1, RUN_SPAN - 1) < 2**53


def test_tool_calls_start_with_the_ai_message_and_end_with_the_tool_message():
    conv = RunConverter()
    call = {"id": "c1", "name": "add", "args": {"a": 1}}
    out = feed(conv,
               ("updates|sub:1", {"agent": {"messages": [
                   {"type": "ai", "id": "m", "content": "", "tool_calls": [call]}]}}),
               ("updates|sub:1", {"tools": {"messages": [
                   {"type": "tool", "tool_call_id": "c1", "content": "2"}]}}),
               ("updates", {"tools": {"messages": {"type": "tool", "tool_call_id": "c2",
                                                   "content": "no", "status": "error"}}}))
    tools = [(ns, d) for m, ns, d in out if m == "tools"]
    assert tools == [
        (["sub:1"], {"event": "tool-started", "tool_call_id": "c1", "tool_name": "add",
                     "input": {"a": 1}}),
        (["sub:1"], {"event": "tool-finished", "tool_call_id": "c1", "output": "2"}),
        ([], {"event": "tool-error", "tool_call_id": "c2", "message": "no"}),
    ]


def test_a_lost_end_after_an_interrupt_still_announces_it():
    conv = RunConverter()
    feed(conv, ("metadata", {}), ("updates", {"__interrupt__": [{"value": 1, "id": "i"}]}))
    out = conv.synthetic("interrupted")
    assert [m for m, _, _ in out] == ["input.requested", "lifecycle"]
    assert conv.ended and out[-1][2] == {"event": "interrupted"}


def _cp(cid, parent, step, source, ns=""):
    conf = {"checkpoint_ns": ns, "thread_id": "t", "checkpoint_id": cid}
    return {"config": {"configurable": conf},
            "parent_config": parent and {"configurable": {**conf, "checkpoint_id": parent}},
            "values": {"big": "state"}, "metadata": {"source": source, "step": step},
            "next": ["sub"], "tasks": []}


def test_tasks_and_checkpoints_in_their_namespaces_and_a_subgraph_closed_by_its_parent():
    # The v1 tape LangGraph streams for ``plan -> sub(inner)`` with tasks + checkpoints.
    start = {"id": "t1", "name": "sub", "input": {"x": 1}, "triggers": ["branch:to:sub"]}
    inner = {"id": "t2", "name": "inner", "input": {"x": 1}, "triggers": ["branch:to:inner"]}
    inner_done = {"id": "t2", "name": "inner", "error": None, "result": {"x": 2},
                  "interrupts": []}
    done = {"id": "t1", "name": "sub", "error": None, "result": {"x": 2}, "interrupts": []}
    conv = RunConverter("g")
    out = feed(conv, ("metadata", {}),
               ("checkpoints", _cp("c0", None, -1, "input")),
               ("tasks", start),
               ("checkpoints|sub:t1", _cp("s0", None, -1, "input", "sub:t1")),
               ("tasks|sub:t1", inner),
               ("updates|sub:t1", {"inner": {"x": 2}}),
               ("tasks|sub:t1", inner_done),
               ("checkpoints|sub:t1", _cp("s1", "s0", 1, "loop", "sub:t1")),
               ("updates", {"sub": {"x": 2}}),
               ("tasks", done),
               ("checkpoints", _cp("c1", "c0", 1, "loop")),
               ("end", {"status": "success"}))
    sub = ["sub:t1"]
    assert out == [
        ("lifecycle", [], {"event": "started", "graph_name": "g"}),
        ("checkpoints", [], {"id": "c0", "step": -1, "source": "input"}),
        ("tasks", [], start),
        ("lifecycle", sub, {"event": "started", "graph_name": "sub"}),
        ("checkpoints", sub, {"id": "s0", "step": -1, "source": "input"}),
        ("tasks", sub, inner),
        ("updates", sub, {"node": "inner", "values": {"x": 2}}),
        ("tasks", sub, inner_done),
        ("checkpoints", sub, {"id": "s1", "parent_id": "s0", "step": 1, "source": "loop"}),
        ("updates", [], {"node": "sub", "values": {"x": 2}}),
        ("lifecycle", sub, {"event": "completed", "graph_name": "sub"}),
        ("tasks", [], done),
        ("checkpoints", [], {"id": "c1", "parent_id": "c0", "step": 1, "source": "loop"}),
        ("lifecycle", [], {"event": "completed", "graph_name": "g"}),  # sub not closed twice
    ]


def test_parallel_runs_of_one_subgraph_close_oldest_first_and_nested_ones_at_their_level():
    conv = RunConverter()
    out = feed(conv, ("metadata", {}),
               ("values|sub:a", {}), ("values|sub:b", {}), ("values|sub:a|deep:c", {}),
               ("updates|sub:a", {"deep": {}}),  # closes sub:a|deep:c, not a root child
               ("updates", {"sub": {}}),  # the first run of ``sub`` to report
               ("tasks", {"id": "x", "name": "other", "input": None, "triggers": []}),
               ("end", {"status": "success"}))
    closing = [(ns, d["event"]) for m, ns, d in out
               if m == "lifecycle" and d["event"] != "started"]
    assert closing == [(["sub:a", "deep:c"], "completed"), (["sub:a"], "completed"),
                       (["sub:b"], "completed"), ([], "completed")]


def test_tasks_and_checkpoints_pass_the_channel_and_namespace_filters():
    conv = RunConverter()
    out = feed(conv, ("metadata", {}),
               ("tasks|sub:1", {"id": "t", "name": "n", "input": 1, "triggers": []}),
               ("checkpoints", _cp("c", None, 0, "loop")))
    flt = parse_filter({"channels": ["tasks", "checkpoints"], "namespaces": [["sub"]]})
    assert [m for m, ns, d in out if matches(flt, (m, ns, d))] == ["tasks"]
    flt = parse_filter({"channels": ["checkpoints"], "depth": 0})
    assert [m for m, ns, d in out if matches(flt, (m, ns, d))] == ["checkpoints"]
