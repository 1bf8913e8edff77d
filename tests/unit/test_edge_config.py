"""Edge settings: aegra.json ``http.cors`` and ``webhooks`` validation, secrets masked in
``aegra serve --check``, the no-auth exposure warning, accepted X-Request-IDs."""

from __future__ import annotations

import json

import pytest

from aegra import config, project
from aegra.api.app import request_id
from aegra.config import ConfigError
from aegra.domain.webhooks import UrlPolicy


def load(tmp_path, **doc):
    path = tmp_path / "aegra.json"
    path.write_text(json.dumps({"graphs": {}, **doc}))
    return project.load(path)


def test_cors_and_webhooks_are_parsed(tmp_path):
    proj = load(tmp_path, http={"cors": {"allow_origins": ["https://a.example"],
                                         "allow_credentials": True, "max_age": 60}},
                webhooks={"url": {"allowed_domains": ["*.example.com"],
                                  "require_https": True},
                          "headers": {"X-Token": "${{ env.LG_WEBHOOK_T }}"}})
    assert proj.http.cors is not None
    assert proj.http.cors.allow_origins == ("https://a.example",)
    assert proj.http.cors.allow_credentials and proj.http.cors.max_age == 60
    assert proj.webhooks.url == UrlPolicy(allowed_domains=("*.example.com",),
                                          require_https=True)
    assert proj.webhooks.headers == {"X-Token": "${{ env.LG_WEBHOOK_T }}"}
    assert load(tmp_path).webhooks.url == UrlPolicy()  # absent: the safe defaults


@pytest.mark.parametrize("doc, expected", [
    ({"http": {"cors": {"allow_origins": "https://a.example"}}},
     "config error: http.cors.allow_origins = 'https://a.example' (aegra.json): "
     "expected `array | null`"),
    ({"http": {"cors": {"allow_origins": ["https://a.example/"]}}},
     "config error: http.cors.allow_origins = 'https://a.example/' (aegra.json): expected '*'"),
    ({"http": {"cors": {"allow_origins": ["https://a", 3]}}},
     "config error: http.cors.allow_origins.1 = 3 (aegra.json): expected `str`"),
    ({"http": {"cors": {"allow_origin": ["*"]}}},
     "config error: http.cors.allow_origin = ['*'] (aegra.json): unknown setting"),
    ({"http": {"cors": {"allow_origin_regex": "("}}},
     "config error: http.cors.allow_origin_regex = '(' (aegra.json): not a regular expression"),
    ({"http": {"cors": {"max_age": -1}}},
     "config error: http.cors.max_age = -1 (aegra.json): must be >= 0"),
    ({"http": {"cors": {"allow_methods": ["GET POST"]}}},
     "config error: http.cors.allow_methods = 'GET POST' (aegra.json)"),
    ({"http": {"cors": {"allow_credentials": "yes"}}},
     "config error: http.cors.allow_credentials = 'yes' (aegra.json): expected `bool`"),
    ({"webhooks": {"url": {"disable_loopback": "no"}}},
     "config error: webhooks.url.disable_loopback = 'no' (aegra.json): expected `bool`"),
    ({"webhooks": {"url": {"allowed_ports": [443, "x"]}}},
     "config error: webhooks.url.allowed_ports.1 = 'x' (aegra.json): expected `int`"),
    ({"webhooks": {"url": {"allow_domains": []}}},
     "config error: webhooks.url.allow_domains = [] (aegra.json): unknown setting"),
    ({"webhooks": {"url": {"max_url_length": 0}}},
     "config error: webhooks.url.max_url_length = 0 (aegra.json): must be >= 1"),
    ({"webhooks": {"headers": {"X": 1}}},
     "config error: webhooks.headers = {'X': 1} (aegra.json): expected `str`"),
])
def test_bad_values_are_one_line_naming_the_key(tmp_path, doc, expected):
    with pytest.raises(ConfigError) as info:
        load(tmp_path, **doc)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(expected), message


@pytest.mark.parametrize("url, secret", [
    ("postgresql://u:secret@h/db", "secret"),
    ("postgresql://u:p@ss@h/db", "p@ss"),  # an @ in the password
    ("redis://:secret@h:6379/0", "secret"),
    ("redis://default:secret@h:6379/0", "secret"),
    ("postgresql://u@h/db?password=secret&sslmode=require", "secret"),
    ("postgresql://h/db?user=u&PASSWORD=secret", "secret"),
    ("rediss://h:6379/0?token=secret", "secret"),
])
def test_check_masks_every_password_form(url, secret):
    env = {"DATABASE_URL": url, "REDIS_URL": url, "AEGRA__SERVER__GRAPHS_FILE": url}
    rows = {key: value for key, value, _ in config.load(None, env).describe()}
    for key in ("postgres.url", "redis.url", "server.graphs_file"):  # any URL-valued key
        assert secret not in rows[key], (key, rows[key])
        assert "****" in rows[key]


def test_check_keeps_what_is_not_secret():
    rows = {key: value for key, value, _ in config.load(
        None, {"DATABASE_URL": "postgresql://u:pw@db.internal:5433/app?sslmode=require"}
    ).describe()}
    assert rows["postgres.url"] == "postgresql://u:****@db.internal:5433/app?sslmode=require"


@pytest.mark.parametrize("env, warned", [
    ({}, True),  # 0.0.0.0 by default
    ({"AEGRA__SERVER__HOST": "::"}, True),
    ({"AEGRA__SERVER__HOST": "10.0.0.5"}, True),
    ({"AEGRA__SERVER__HOST": "myhost.lan"}, True),
    ({"AEGRA__SERVER__HOST": "127.0.0.1"}, False),
    ({"AEGRA__SERVER__HOST": "::1"}, False),
    ({"AEGRA__SERVER__HOST": "localhost"}, False),
    ({"AUTH_TYPE": "custom"}, False),
])
def test_exposure_warning(env, warned):
    message = config.exposed_without_auth(config.load(None, env).config)
    assert (message is not None) is warned
    if message is not None:
        assert "AUTH_TYPE=noop" in message and "AUTH_TYPE=custom" in message
        assert "--host 127.0.0.1" in message and "\n" not in message


@pytest.mark.parametrize("header, kept", [
    ("abc-123_x.y", True),
    ("a" * 128, True),
    ("a" * 129, False),
    ("", False),
    ("has space", False),
    ("evil\r\nX-Injected: 1", False),
    ("ünïcode", False),
    ("{json}", False),
    (None, False),
])
def test_request_id_acceptance(header, kept):
    rid = request_id(header)
    assert (rid == header) is kept
    assert len(rid) <= 128 and rid.replace("-", "").replace("_", "").replace(".", "").isalnum()
