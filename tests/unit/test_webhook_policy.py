"""The webhook URL policy (spec auth.md item 17): what a run may post its result to."""

from __future__ import annotations

import pytest

from aegra.domain.errors import Invalid
from aegra.domain.webhooks import (
    UrlPolicy,
    check_addresses,
    check_url,
    classify,
    host_of,
    mask,
    render_headers,
)

DEFAULT = UrlPolicy()


@pytest.mark.parametrize("url, why", [
    ("http://127.0.0.1:8080/hook", "loopback"),
    ("http://127.45.0.3/hook", "loopback"),
    ("http://[::1]/hook", "loopback"),
    ("http://localhost:9000/hook", "loopback"),
    ("http://api.localhost/hook", "loopback"),
    ("http://0.0.0.0/hook", "loopback"),
    ("http://[::]/hook", "loopback"),
    ("http://[::ffff:127.0.0.1]/hook", "loopback"),
    ("http://2130706433/hook", "loopback"),  # 127.0.0.1 as one number
    ("http://0x7f.1/hook", "loopback"),
    ("http://10.0.0.1/hook", "private"),
    ("http://172.16.5.4/hook", "private"),
    ("http://192.168.1.10/hook", "private"),
    ("http://[fc00::1]/hook", "private"),
    ("http://100.64.0.1/hook", "private"),  # CGNAT
    ("http://169.254.169.254/latest/meta-data/", "link-local"),
    ("http://[fe80::1]/hook", "link-local"),
    ("http://224.0.0.1/hook", "reserved"),
    ("/runs/hook", "relative URLs are not allowed"),
    ("hooks.example.com/x", "relative URLs are not allowed"),
    ("ftp://hooks.example.com/x", "expected an http(s) URL"),
    ("javascript:alert(1)", "expected an http(s) URL"),
    ("http:///nohost", "no host"),
    ("http://hooks.example.com:99999/x", "not a valid URL"),
])
def test_default_policy_refuses(url, why):
    with pytest.raises(Invalid) as info:
        check_url(url, DEFAULT)
    assert info.value.field == "webhook" and info.value.status == 422
    assert why in info.value.message, info.value.message
    assert info.value.message.startswith("invalid field 'webhook': ")


@pytest.mark.parametrize("url", [
    "https://hooks.example.com/run-done?x=1",
    "http://hooks.example.com:8080/hook",
    "http://93.184.216.34/hook",
    "https://[2606:4700:4700::1111]/hook",
])
def test_default_policy_allows_public_urls(url):
    assert check_url(url, DEFAULT) == url


def test_max_length_counts_the_whole_url():
    url = "https://hooks.example.com/" + "x" * 4100
    with pytest.raises(Invalid, match="longer than 4096"):
        check_url(url, DEFAULT)
    assert check_url(url[:4096], DEFAULT) == url[:4096]
    with pytest.raises(Invalid, match="longer than 30"):
        check_url("https://hooks.example.com/abcdef", UrlPolicy(max_url_length=30))


def test_require_https_and_allowed_ports():
    https_only = UrlPolicy(require_https=True)
    with pytest.raises(Invalid, match="https is required"):
        check_url("http://hooks.example.com/x", https_only)
    assert check_url("https://hooks.example.com/x", https_only)
    ports = UrlPolicy(allowed_ports=(443, 8443))
    assert check_url("https://hooks.example.com/x", ports)  # 443 implied
    assert check_url("https://hooks.example.com:8443/x", ports)
    with pytest.raises(Invalid, match="port 80 is not in"):
        check_url("http://hooks.example.com/x", ports)


def test_allowlist_exact_hosts_and_wildcard_subdomains():
    policy = UrlPolicy(allowed_domains=("hooks.example.com", "*.corp.example"))
    assert check_url("https://hooks.example.com/x", policy)
    assert check_url("https://HOOKS.example.com./x", policy)  # case and trailing dot
    assert check_url("https://a.b.corp.example/x", policy)
    for refused in ("https://corp.example/x", "https://evil.com/x",
                    "https://hooks.example.com.evil.com/x", "https://evilcorp.example/x"):
        with pytest.raises(Invalid, match="not in webhooks.url.allowed_domains"):
            check_url(refused, policy)


def test_a_host_named_in_the_allowlist_may_be_internal():
    policy = UrlPolicy(allowed_domains=("127.0.0.1", "hooks.internal"))
    assert check_url("http://127.0.0.1:9000/hook", policy)
    check_addresses("hooks.internal", ["10.1.2.3"], policy)
    wildcard = UrlPolicy(allowed_domains=("*.internal",))  # a wildcard trusts no address
    with pytest.raises(Invalid, match="private"):
        check_addresses("a.internal", ["10.1.2.3"], wildcard)


def test_disable_loopback_false_lets_loopback_only():
    policy = UrlPolicy(disable_loopback=False)
    assert check_url("http://127.0.0.1:9000/hook", policy)
    assert check_url("http://localhost:9000/hook", policy)
    for refused in ("http://10.0.0.1/", "http://169.254.169.254/"):
        with pytest.raises(Invalid):
            check_url(refused, policy)
    with pytest.raises(Invalid, match="relative"):
        check_url("/hook", policy)


def test_resolved_addresses_are_checked_all():
    """At delivery: a public name that resolves (also) somewhere internal is refused."""
    check_addresses("hooks.example.com", ["93.184.216.34", "2606:4700::1111"], DEFAULT)
    with pytest.raises(Invalid) as info:
        check_addresses("rebind.example.com", ["93.184.216.34", "169.254.169.254"], DEFAULT)
    assert "rebind.example.com (169.254.169.254) is a link-local address" in info.value.message
    with pytest.raises(Invalid, match="loopback"):
        check_addresses("h.example.com", ["::ffff:127.0.0.1"], DEFAULT)


def test_classify_and_host_of():
    import ipaddress

    assert classify(ipaddress.ip_address("8.8.8.8")) is None
    assert classify(ipaddress.ip_address("192.168.0.1")) == "private"
    assert host_of("https://user:pw@[::1]:8080/x") == "::1"
    assert host_of("https://Hooks.Example.com./x") == "hooks.example.com"


def test_mask_hides_credentials_only():
    assert mask("https://user:s3cret@hooks.example.com/x?q=1") == (
        "https://****@hooks.example.com/x?q=1")
    assert mask("https://token@hooks.example.com/x") == "https://****@hooks.example.com/x"
    assert mask("https://a:b@c@hooks.example.com/x") == "https://****@hooks.example.com/x"
    assert mask("https://hooks.example.com/x") == "https://hooks.example.com/x"
    assert "s3cret" not in mask("http://u:s3cret@[::1")  # unparseable: hidden whole


def test_render_headers_reads_only_prefixed_variables():
    env = {"LG_WEBHOOK_TOKEN": "t0k", "DATABASE_URL": "postgresql://u:p@h/db"}
    out = render_headers({"Authorization": "Bearer ${{ env.LG_WEBHOOK_TOKEN }}", "X-A": "b"},
                         env, "LG_WEBHOOK_")
    assert out == {"Authorization": "Bearer t0k", "X-A": "b"}
    with pytest.raises(ValueError, match="only variables starting with 'LG_WEBHOOK_'"):
        render_headers({"X": "${{ env.DATABASE_URL }}"}, env, "LG_WEBHOOK_")
    with pytest.raises(ValueError, match="not set"):
        render_headers({"X": "${{env.LG_WEBHOOK_MISSING}}"}, env, "LG_WEBHOOK_")
