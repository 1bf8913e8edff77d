"""A run's execution params carry the caller's identity and never a client's (spec/auth.md
item 13): ``build_params`` is pure, so this is checked without a server."""

from __future__ import annotations

from aegra.domain.run_params import build_params, reserved_sent

ASSISTANT = {"assistant_id": "a1", "graph_id": "g", "config": {"configurable": {"k": 1}},
             "context": {"c": 1}}
ALICE = {"identity": "alice", "permissions": ["read"], "display_name": "Alice",
         "is_authenticated": True, "team": "red"}
SPOOF = {"langgraph_auth_user_id": "admin", "langgraph_auth_user": {"identity": "admin"},
         "langgraph_auth_permissions": ["admin"], "langgraph_request_id": "x"}


def test_the_caller_becomes_the_identity_keys() -> None:
    body = {"assistant_id": "a1", "config": {"configurable": {**SPOOF, "mine": 2}},
            "context": {**SPOOF, "ctx": 3}}
    params = build_params(body, ASSISTANT, True, user=ALICE)
    conf = params["config"]["configurable"]
    assert conf["langgraph_auth_user"] == ALICE
    assert conf["langgraph_auth_user_id"] == "alice"
    assert conf["langgraph_auth_permissions"] == ["read"]
    assert "langgraph_request_id" not in conf
    assert (conf["k"], conf["mine"]) == (1, 2)
    assert params["context"] == {"c": 1, "ctx": 3}
    assert sorted(reserved_sent(body)) == sorted(SPOOF)


def test_anonymous_runs_get_no_identity_and_keep_no_client_one() -> None:
    body = {"assistant_id": "a1", "config": {"configurable": dict(SPOOF)}}
    conf = build_params(body, ASSISTANT, False)["config"]["configurable"]
    assert conf == {"k": 1}
    # Nothing reserved: the config is exactly the merge, as before identity existed.
    plain = build_params({"assistant_id": "a1", "config": {"tags": ["t"]}}, ASSISTANT, False)
    assert plain["config"] == {"configurable": {"k": 1}, "tags": ["t"]}
    assert reserved_sent({"assistant_id": "a1"}) == []


def test_an_assistant_cannot_carry_an_identity_either() -> None:
    stored = {**ASSISTANT, "config": {"configurable": {"langgraph_auth_user_id": "admin"}}}
    conf = build_params({"assistant_id": "a1"}, stored, True, user=ALICE)["config"][
        "configurable"]
    assert conf["langgraph_auth_user_id"] == "alice"
    assert build_params({"assistant_id": "a1"}, stored, True)["config"]["configurable"] == {}
