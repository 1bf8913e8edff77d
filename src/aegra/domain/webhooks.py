"""Webhook URL policy: which URLs a run may post its result to (spec auth.md item 17).

A webhook makes this server send a request wherever a client says, so an unchecked URL
reads the cloud metadata service or an internal admin port for the caller (SSRF). The
policy is checked twice:

* ``check_url`` when a run or cron is created: the URL's form (absolute http(s), length,
  port, ``allowed_domains``) and, when the host is an IP literal or ``localhost``, its
  address. A 422 then, before anything is written.
* ``check_addresses`` at delivery, on what the host name resolves to *then*: a name may
  point somewhere public at creation and at 127.0.0.1 an hour later (DNS rebinding).

Refused unless allowed: loopback and unspecified (0.0.0.0, ::) addresses while
``disable_loopback`` is on (the default); private, link-local (169.254.169.254 is the
metadata service), CGNAT, multicast and reserved addresses always. A host written out in
``allowed_domains`` (no wildcard) is trusted to resolve anywhere: the operator named it.
Relative URLs are always refused: there is no in-process delivery here.

Keys as in LangGraph's ``webhooks.url`` (langgraph-cli ``WebhookUrlPolicy``). Pure: the
resolving is the adapter's (``adapters/webhook.py``).
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterable, Mapping
from urllib.parse import SplitResult, urlsplit

import msgspec

from aegra.domain.errors import Invalid

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
_DEFAULT_PORTS = {"http": 80, "https": 443}
# Numeric hosts that are not dotted quads ("2130706433", "0x7f.1", "127.1"): resolvers
# read them as IPv4 addresses, so they are classified as such, not as names.
_NUMERIC_HOST = re.compile(r"^(0x[0-9a-f]*|[0-9]+)(\.(0x[0-9a-f]*|[0-9]+)){0,3}$")
_ENV_REF = re.compile(r"\$\{\{\s*env\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


class UrlPolicy(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    require_https: bool = False
    allowed_domains: tuple[str, ...] = ()  # "hooks.example.com", "*.example.com" (subdomains)
    allowed_ports: tuple[int, ...] = ()  # empty: any; a URL without a port uses 80/443
    max_url_length: int = 4096
    disable_loopback: bool = True


def _invalid(why: str) -> Invalid:
    return Invalid(f"invalid field 'webhook': {why}", field="webhook")


def mask(url: str) -> str:
    """The URL with its credentials (``user:pass@``) hidden: for logs and for readers."""
    try:
        parsed = urlsplit(url)
    except ValueError:
        return "****"
    if parsed.username is None and parsed.password is None:
        return url
    return parsed._replace(netloc="****@" + parsed.netloc.rpartition("@")[2]).geturl()


def check_url(url: str, policy: UrlPolicy) -> str:
    """The URL, if the policy lets runs post to it; else ``Invalid`` (422) saying why."""
    if len(url) > policy.max_url_length:
        raise _invalid(f"URL longer than {policy.max_url_length} characters")
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise _invalid(f"not a valid URL ({exc})") from None
    if not parts.scheme and not parts.netloc:
        raise _invalid("relative URLs are not allowed; give an absolute http(s) URL")
    if parts.scheme not in _DEFAULT_PORTS:
        raise _invalid("expected an http(s) URL")
    if policy.require_https and parts.scheme != "https":
        raise _invalid("https is required (webhooks.url.require_https)")
    host = _host(parts)
    port = port if port is not None else _DEFAULT_PORTS[parts.scheme]
    if policy.allowed_ports and port not in policy.allowed_ports:
        raise _invalid(f"port {port} is not in webhooks.url.allowed_ports")
    if policy.allowed_domains and not _domain_allowed(host, policy.allowed_domains):
        raise _invalid(f"host {host!r} is not in webhooks.url.allowed_domains")
    literal = _literal(host)
    if literal is not None:
        check_addresses(host, [literal], policy)
    elif host == "localhost" or host.endswith(".localhost"):
        check_addresses(host, [ipaddress.ip_address("127.0.0.1")], policy)
    return url


def host_of(url: str) -> str:
    """The host a checked URL connects to (for resolving at delivery)."""
    return _host(urlsplit(url.strip()))


def check_addresses(host: str, addresses: Iterable[Address | str], policy: UrlPolicy) -> None:
    """``Invalid`` if any address the host stands for may not be posted to."""
    if _listed(host, policy.allowed_domains):
        return
    for value in addresses:
        address = ipaddress.ip_address(value) if isinstance(value, str) else value
        kind = classify(address)
        if kind is None or (kind == "loopback" and not policy.disable_loopback):
            continue
        shown = host if host == str(address) else f"{host} ({address})"
        raise _invalid(f"{shown} is a {kind} address; webhooks go to public hosts "
                       "unless webhooks.url.allowed_domains names the host")


def classify(address: Address) -> str | None:
    """None for a public address, else what it is."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address.is_loopback or address.is_unspecified:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    if address.is_multicast or address.is_reserved:
        return "reserved"
    if address.is_private or not address.is_global:
        return "private"
    return None


def render_headers(headers: Mapping[str, str], environ: Mapping[str, str],
                   prefix: str) -> dict[str, str]:
    """``${{ env.NAME }}`` in header values, from the environment; only names that start
    with ``prefix`` may be read, so a project file cannot exfiltrate DATABASE_URL."""
    out: dict[str, str] = {}

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if not name.startswith(prefix):
            raise ValueError(f"${{{{ env.{name} }}}}: only variables starting with "
                             f"{prefix!r} (webhooks.env_prefix) may be used")
        if name not in environ:
            raise ValueError(f"${{{{ env.{name} }}}}: the variable is not set")
        return environ[name]

    for key, template in headers.items():
        out[key] = _ENV_REF.sub(value, template)
    return out


def _host(parts: SplitResult) -> str:
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise _invalid("the URL has no host")
    return host


def _literal(host: str) -> Address | None:
    try:
        return ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        pass
    if _NUMERIC_HOST.match(host):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))  # no I/O: parsing only
        except OSError:
            raise _invalid(f"host {host!r} is not a valid address") from None
    return None


def _listed(host: str, domains: Iterable[str]) -> bool:
    """Written out exactly (no wildcard) in ``allowed_domains``."""
    return any(host == d.lower().rstrip(".") for d in domains if not d.startswith("*."))


def _domain_allowed(host: str, domains: Iterable[str]) -> bool:
    for entry in domains:
        entry = entry.lower().rstrip(".")
        if entry.startswith("*."):
            if host.endswith(entry[1:]) and host != entry[2:]:
                return True
        elif host == entry:
            return True
    return False
