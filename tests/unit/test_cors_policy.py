"""The CORS policy (spec auth.md item 18): credentials only with a named origin echoed."""

from __future__ import annotations

from types import SimpleNamespace

from aegra.api.cors import CorsPolicy, is_preflight
from aegra.project import CorsCfg

ACAO = "Access-Control-Allow-Origin"
ACAC = "Access-Control-Allow-Credentials"


def test_default_is_any_origin_without_credentials():
    policy = CorsPolicy.build(None, ("*",))
    simple = policy.simple("https://evil.example")
    assert simple[ACAO] == "*" and ACAC not in simple
    assert "Location" in simple["Access-Control-Expose-Headers"]
    assert policy.simple(None) == {}  # not a cross-origin request
    assert not policy.varies
    status, headers, _ = policy.preflight("https://evil.example", "DELETE", "x-api-key")
    assert status == 200 and headers[ACAO] == "*" and ACAC not in headers
    assert headers["Access-Control-Allow-Headers"] == "x-api-key"  # '*' echoes the request
    assert "PATCH" in headers["Access-Control-Allow-Methods"]
    assert headers["Access-Control-Max-Age"] == "600"


def test_named_origins_from_the_setting_get_credentials_others_nothing():
    policy = CorsPolicy.build(None, ("https://app.example.com",))
    ok = policy.simple("https://app.example.com")
    assert ok[ACAO] == "https://app.example.com" and ok[ACAC] == "true"
    assert policy.simple("https://evil.example") == {}
    assert policy.varies
    status, headers, body = policy.preflight("https://evil.example", "GET", None)
    assert status == 400 and ACAO not in headers and ACAC not in headers
    assert body == "Disallowed CORS origin"


def test_star_never_gets_credentials_even_when_asked():
    policy = CorsPolicy.build(CorsCfg(allow_origins=("*",), allow_credentials=True), ())
    assert policy.credentials_unusable
    simple = policy.simple("https://evil.example")
    assert simple[ACAO] == "*" and ACAC not in simple
    status, headers, _ = policy.preflight("https://evil.example", "POST", None)
    assert status == 200 and headers[ACAO] == "*" and ACAC not in headers


def test_star_beside_a_named_origin_credentials_only_for_the_named_one():
    policy = CorsPolicy.build(
        CorsCfg(allow_origins=("*", "https://app.example.com"), allow_credentials=True), ())
    assert not policy.credentials_unusable and policy.varies
    assert policy.simple("https://app.example.com")[ACAC] == "true"
    other = policy.simple("https://evil.example")
    assert other[ACAO] == "*" and ACAC not in other


def test_http_cors_wins_over_the_setting_and_credentials_follow_it():
    cfg = CorsCfg(allow_origins=("https://a.example",), allow_credentials=False)
    policy = CorsPolicy.build(cfg, ("https://b.example",))
    assert policy.simple("https://b.example") == {}
    assert ACAC not in policy.simple("https://a.example")
    inherits = CorsPolicy.build(CorsCfg(allow_credentials=True), ("https://b.example",))
    assert inherits.simple("https://b.example")[ACAC] == "true"


def test_origin_regex_must_match_whole_origin():
    policy = CorsPolicy.build(CorsCfg(allow_origins=(), allow_credentials=True,
                                      allow_origin_regex=r"https://[a-z]+\.example\.com"), ())
    assert policy.simple("https://app.example.com")[ACAO] == "https://app.example.com"
    assert policy.simple("https://app.example.com.evil.io") == {}
    assert policy.simple("http://app.example.com") == {}


def test_methods_headers_and_max_age_from_config():
    policy = CorsPolicy.build(CorsCfg(allow_origins=("https://a.example",),
                                      allow_methods=("get", "POST"),
                                      allow_headers=("X-Custom",), max_age=42,
                                      expose_headers=("X-Extra",)), ())
    status, headers, _ = policy.preflight("https://a.example", "POST", "x-custom, Content-Type")
    assert status == 200
    assert headers["Access-Control-Allow-Methods"] == "GET, POST"
    assert "X-Custom" in headers["Access-Control-Allow-Headers"]
    assert headers["Access-Control-Max-Age"] == "42"
    assert headers["Access-Control-Expose-Headers"].endswith("X-Extra")
    bad_method = policy.preflight("https://a.example", "DELETE", None)
    assert bad_method[0] == 400 and bad_method[2] == "Disallowed CORS method"
    bad_header = policy.preflight("https://a.example", "GET", "X-Other")
    assert bad_header[0] == 400 and bad_header[2] == "Disallowed CORS headers"
    everything = policy.preflight("https://evil.example", "DELETE", "X-Other")
    assert everything[2] == "Disallowed CORS origin, method, headers"


def test_is_preflight():
    def req(method, **headers):
        return SimpleNamespace(method=method, headers=headers)

    assert is_preflight(req("OPTIONS", **{"Origin": "https://a",
                                          "Access-Control-Request-Method": "POST"}))
    assert not is_preflight(req("OPTIONS", Origin="https://a"))
    assert not is_preflight(req("POST", **{"Origin": "https://a",
                                           "Access-Control-Request-Method": "POST"}))
