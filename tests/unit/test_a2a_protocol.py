"""The A2A protocol's pure parts: the JSON-RPC envelope, the 0.3 rewrite, and the
mapping between A2A messages and a graph's ``messages`` state."""

from __future__ import annotations

import pytest

from aegra.domain import a2a
from aegra.domain import a2a_messages as msgs
from aegra.domain.a2a import RpcError, parse_call


def test_both_method_families_decode_to_one_call():
    new = parse_call(b'{"jsonrpc":"2.0","id":1,"method":"SendMessage","params":{}}')
    old = parse_call(b'{"jsonrpc":"2.0","id":"x","method":"message/stream"}')
    assert (new.method, new.legacy, new.streaming) == (a2a.SEND, False, False)
    assert (old.method, old.legacy, old.streaming, old.params) == (a2a.STREAM, True, True, {})


@pytest.mark.parametrize(("raw", "code", "rpc_id"), [
    (b"{", a2a.PARSE_ERROR, None),
    (b"[]", a2a.INVALID_REQUEST, None),
    (b'{"jsonrpc":"1.0","id":4,"method":"GetTask"}', a2a.INVALID_REQUEST, 4),
    (b'{"jsonrpc":"2.0","id":true,"method":"GetTask"}', a2a.INVALID_REQUEST, None),
    (b'{"jsonrpc":"2.0","id":4}', a2a.INVALID_REQUEST, 4),
    (b'{"jsonrpc":"2.0","method":"GetTask"}', a2a.INVALID_REQUEST, None),
    (b'{"jsonrpc":"2.0","id":4,"method":["GetTask"]}', a2a.METHOD_NOT_FOUND, 4),
    (b'{"jsonrpc":"2.0","id":4,"method":"ListTasks"}', a2a.METHOD_NOT_FOUND, 4),
    (b'{"jsonrpc":"2.0","id":4,"method":"GetTask","params":1}', a2a.INVALID_PARAMS, 4),
])
def test_bad_envelopes(raw, code, rpc_id):
    with pytest.raises(RpcError) as caught:
        parse_call(raw)
    body = caught.value.body()
    assert (body["error"]["code"], body["id"]) == (code, rpc_id)


def test_0_3_answers_are_lower_case_and_unwrapped():
    call = parse_call(b'{"jsonrpc":"2.0","id":1,"method":"message/send"}')
    done = a2a.task("c:r", "c", a2a.status(a2a.INPUT_REQUIRED),
                    history=[a2a.text_message("hi", "c:r", "c")])
    body = call.result({"task": done})
    assert body["result"]["kind"] == "task"
    assert body["result"]["status"]["state"] == "input-required"
    assert body["result"]["history"][0]["role"] == "agent"
    event = call.result(a2a.stream_result("statusUpdate", a2a.status_update(
        "c:r", "c", a2a.status(a2a.CANCELED), final=True)))
    assert (event["result"]["kind"], event["result"]["status"]["state"]) == (
        "status-update", "canceled")
    new = parse_call(b'{"jsonrpc":"2.0","id":1,"method":"SendMessage"}')
    assert new.result({"task": done})["result"]["task"]["status"]["state"] == a2a.INPUT_REQUIRED


def test_task_ids_and_history_length():
    assert a2a.split_task_id(a2a.task_id("ctx", "run")) == ("ctx", "run")
    assert a2a.split_task_id("run") is None
    assert a2a.history_length(None) is None and a2a.history_length(10) == 10
    for bad in (-1, 11, True, "3"):
        with pytest.raises(RpcError):
            a2a.history_length(bad)
    assert a2a.clip([{"n": 1}, {"n": 2}], 0) == []
    assert a2a.clip([{"n": 1}, {"n": 2}], 1) == [{"n": 2}]


def test_parts_become_graph_input():
    message = msgs.incoming({"message": {"messageId": "m", "role": "user", "parts": [
        {"kind": "text", "text": "hi"}, {"kind": "data", "data": {"k": 1}}]}})
    assert msgs.graph_input(message) == {
        "k": 1, "messages": [{"role": "human", "content": "hi", "id": "m"}]}
    assert msgs.has_text(message)
    for parts in ([{"file": {}}], [{"text": "a", "data": {}}], [{"data": [1]}], ["x"]):
        with pytest.raises(RpcError) as caught:
            msgs.graph_input({"messageId": "m", "role": "ROLE_USER", "parts": parts})
        assert caught.value.code == a2a.CONTENT_TYPE_NOT_SUPPORTED
    with pytest.raises(RpcError, match="role"):
        msgs.incoming({"message": {"messageId": "m", "role": "robot", "parts": [{"text": ""}]}})


def test_graph_messages_become_history_and_the_reply():
    values = {"messages": [
        {"type": "system", "content": "be nice", "id": "s"},
        {"type": "human", "content": "hi", "id": "h"},
        {"type": "ai", "content": "", "id": "call", "tool_calls": [{"name": "t"}]},
        {"type": "tool", "content": "42", "id": "t"},
        {"type": "ai", "content": [{"type": "text", "text": "it is 42"}], "id": "a"},
    ]}
    history = msgs.history(values["messages"], "c:r", "c")
    assert [(m["role"], m["parts"][0]["text"], m["messageId"]) for m in history] == [
        (a2a.USER, "hi", "h"), (a2a.AGENT, "it is 42", "a")]
    assert msgs.reply(values, "aid")["parts"] == [{"kind": "text", "text": "it is 42"}]
    assert msgs.reply({"answer": 1}, "aid")["parts"] == [{"kind": "data", "data": {"answer": 1}}]


def test_text_needs_a_messages_input():
    assistant = {"assistant_id": "a", "graph_id": "g"}
    msgs.require_messages(assistant, {"input_schema": {"properties": {"messages": {}}}})
    with pytest.raises(RpcError, match="does not support A2A conversational messages"):
        msgs.require_messages(assistant, {"input_schema": {"properties": {"x": {}}}})
    with pytest.raises(RpcError, match="no input schema"):
        msgs.require_messages(assistant, {})


def test_message_events_become_progress():
    partial = (b'event: messages/partial\ndata: [{"type":"ai","content":"the qu","id":"x"}]'
               b'\nid: r_event_3\n\n')
    assert msgs.progress("messages/partial", partial) == "the qu"
    human = b'event: messages/complete\ndata: [{"type":"human","content":"hi"}]\n\n'
    assert msgs.progress("messages/complete", human) is None
    assert msgs.progress("messages/metadata", partial) is None
    assert msgs.progress("values", partial) is None


def _message(*parts):
    return {"messageId": "m", "role": "user", "parts": list(parts)}


def test_a_reply_to_an_interrupt_becomes_the_resume_command():
    data = _message({"data": {"resume": {"ok": True}, "note": 1}}, {"text": "also"})
    run_input = msgs.graph_input(data)
    assert msgs.resume(data, run_input) == (
        {"resume": {"ok": True}}, {"note": 1, "messages": run_input["messages"]})
    text = _message({"text": "blue"}, {"text": "green"}, {"data": {"k": 2}})
    # text answers the interrupt and is then not also a new message
    assert msgs.resume(text, msgs.graph_input(text)) == ({"resume": "blue\ngreen"}, {"k": 2})
    plain = _message({"data": {"k": 2}})
    assert msgs.resume(plain, {"k": 2}) == (None, {"k": 2})
    assert msgs.data_resume(_message({"data": {"resume": None}})) == (True, None)
    assert msgs.data_resume(plain) == (False, None)
    with pytest.raises(RpcError, match="Only one resume value") as caught:
        msgs.resume(_message({"data": {"resume": 1}}, {"data": {"resume": 2}}), {})
    assert caught.value.code == a2a.INVALID_PARAMS
