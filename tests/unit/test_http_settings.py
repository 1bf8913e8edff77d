"""aegra.json ``http`` settings: the header rules of ``configurable_headers`` and
``logging_headers`` (langgraph-api 0.16.7 utils/headers.py is the reference),
``mount_prefix`` validation, and an unknown ``http`` key refused at startup in one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from aegra import project
from aegra.config import ConfigError
from aegra.domain.headers import NEVER_LOGGED, HeaderRules, run_headers
from aegra.domain.run_params import build_params


def test_nothing_is_copied_without_includes_except_tracing():
    headers = {"X-Tenant": "a", "User-Agent": "sdk", "Langsmith-Trace": "t1",
               "baggage": "langsmith-metadata=%7B%22k%22%3A1%7D,langsmith-project=p"}
    assert run_headers(headers, HeaderRules()) == {
        "langsmith-trace": "t1", "langsmith-metadata": {"k": 1}, "langsmith-project": "p"}
    # Malformed metadata is skipped; the rest of the baggage still counts.
    odd = {"langsmith-trace": "t", "baggage": "langsmith-metadata=[1],langsmith-tags=a%2Cb"}
    assert run_headers(odd, HeaderRules()) == {"langsmith-trace": "t",
                                               "langsmith-tags": ["a", "b"]}
    assert run_headers({"baggage": "langsmith-project=p"}, HeaderRules()) == {}


def test_globs_are_case_insensitive_and_excludes_win():
    rules = HeaderRules(["X-*", "user-agent", "a*b"], ["x-secret-*"])
    headers = [("X-Tenant", "a"), ("x-tenant", "second"), ("X-SECRET-key", "s"),
               ("User-Agent", "ua"), ("accept", "json"), ("axxb", "1"), ("axxbc", "2")]
    assert run_headers(headers, rules) == {"x-tenant": "a", "user-agent": "ua", "axxb": "1"}
    # '*' is the only wildcard: other regex characters are literal.
    assert HeaderRules(["x.y"]).allows("x.y") and not HeaderRules(["x.y"]).allows("xzy")


def test_credentials_and_server_keys_never_reach_a_run():
    everything = HeaderRules(["*"])
    headers = {"Authorization": "Bearer t", "X-Api-Key": "k", "X-Tenant-Id": "t",
               "X-Service-Key": "s", "thread_id": "mine", "langgraph_auth_user_id": "me",
               "__pregel_x": "1", "cookie": "c=1"}
    assert run_headers(headers, everything) == {"cookie": "c=1"}  # as on the platform
    assert everything.select(headers.items(), NEVER_LOGGED) == {
        "x-tenant-id": "t", "x-service-key": "s", "thread_id": "mine",
        "langgraph_auth_user_id": "me", "__pregel_x": "1"}


def test_headers_go_into_configurable_over_the_body_not_into_context():
    body = {"config": {"configurable": {"x-a": "body", "keep": 1}}, "context": {"c": 1}}
    params = build_params(body, {"graph_id": "g", "assistant_id": "a"}, True,
                          headers={"x-a": "header"}, request_id="r1")
    assert params["config"]["configurable"] == {"x-a": "header", "keep": 1,
                                                "langgraph_request_id": "r1"}
    assert params["context"] == {"c": 1}
    assert params["durability"] == "async"  # the platform's default, stated
    assert build_params({"checkpoint_during": False}, {"graph_id": "g", "assistant_id": "a"},
                        True)["durability"] == "exit"


def _load(tmp_path, http):
    path = tmp_path / "aegra.json"
    path.write_text(json.dumps({"graphs": {}, "http": http}))
    return project.load(path)


def test_mount_prefix_and_header_patterns_are_parsed(tmp_path):
    got = _load(tmp_path, {"mount_prefix": "/my-deployment/api/",
                           "configurable_headers": {"include": ["x-*"]},
                           "logging_headers": {"includes": ["a"], "exclude": ["b"]}})
    assert got.http.mount_prefix == "/my-deployment/api"  # one trailing '/' dropped
    assert got.http.configurable_headers is not None
    assert got.http.configurable_headers.rules() == (("x-*",), ())
    assert got.http.logging_headers is not None
    assert got.http.logging_headers.rules() == (("a",), ("b",))
    assert _load(tmp_path, {"mount_prefix": "/"}).http.mount_prefix is None


@pytest.mark.parametrize("prefix", ["api", "/a b", "/a//b", "/a?x", "/a#b"])
def test_a_bad_mount_prefix_is_one_line_naming_it(tmp_path, prefix):
    with pytest.raises(ConfigError) as err:
        _load(tmp_path, {"mount_prefix": prefix})
    message = str(err.value)
    assert message.startswith(f"config error: http.mount_prefix = {prefix!r} (aegra.json)")
    assert "\n" not in message


def test_an_unknown_http_key_stops_startup_in_one_line(tmp_path):
    (tmp_path / "aegra.json").write_text(json.dumps({"graphs": {},
                                                     "http": {"disable_everything": True}}))
    env = {k: v for k, v in os.environ.items() if not k.startswith("AEGRA_")}
    done = subprocess.run([sys.executable, "-m", "aegra", "serve", "--check"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert done.stderr.strip().splitlines() == [
        "aegra: config error: http.disable_everything = True (aegra.json): unknown setting"]
