"""Store request rules and the wire's NUL/depth handling: pure functions, no I/O."""

from __future__ import annotations

import pytest

from aegra.api.wire import decode, strip_nul
from aegra.domain import store as rules
from aegra.domain.errors import Invalid


def test_namespace_labels():
    assert rules.namespace(["a", "b"], "namespace") == ("a", "b")
    assert rules.namespace([], "prefix", allow_empty=True) == ()
    for bad in (["a.b"], ["a", ""], [], "a", [1]):
        with pytest.raises(Invalid) as err:
            rules.namespace(bad, "namespace")
        assert err.value.field == "namespace"
    assert rules.dotted_namespace("a.b.c") == ("a", "b", "c")
    assert rules.dotted_namespace("") == ()
    with pytest.raises(Invalid):
        rules.dotted_namespace("a..b")


def test_filter_and_paging():
    assert rules.search_filter({"n": {"$gt": 1}, "k": "v"}) == {"n": {"$gt": 1}, "k": "v"}
    assert rules.search_filter({}) is None
    with pytest.raises(Invalid, match=r"\$regex"):
        rules.search_filter({"n": {"$regex": "x"}})
    assert rules.page(10, 0) == (10, 0)
    for limit, offset in ((-1, 0), (rules.MAX_SEARCH_LIMIT + 1, 0), (1, -1)):
        with pytest.raises(Invalid):
            rules.page(limit, offset)
    with pytest.raises(Invalid):
        rules.key("")


def test_nul_stripped_and_depth_bounded():
    assert strip_nul({"a\x00": ["x\x00y", 1, {"b": "\x00"}]}) == {"a": ["xy", 1, {"b": ""}]}
    assert decode(b'{"t": "a\\u0000b"}', dict) == {"t": "ab"}
    for raw in (b"[" * 10_000 + b"]" * 10_000, b'{"a":' * 100 + b"1" + b"}" * 100, b"{x"):
        with pytest.raises(Invalid) as err:
            decode(raw, dict)
        assert err.value.field == "body"
