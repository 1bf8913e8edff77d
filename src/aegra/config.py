"""Settings: built-in defaults -> ``supervisor.toml`` -> environment, later wins.

Every value remembers where it came from, so a bad one stops startup with a single line
naming the key, the value and its source::

    config error: worker.count = 'abc' (env WORKER_COUNT): expected int

Environment names are the product documents' (``WORKER_COUNT``, ``DATABASE_URL``, ...);
``AEGRA__SECTION__KEY`` reaches any other key. Secrets come from the environment only.
Structs are frozen; the config is passed down, never imported as a global.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

import msgspec


class ConfigError(Exception):
    """A setting is wrong. ``str()`` is the one line shown to the operator."""


class _Section(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    pass


class ServerCfg(_Section, frozen=True):
    host: str = "0.0.0.0"
    port: int = 2026
    graphs_file: str | None = None  # aegra.json; None = auto-detect in the working directory
    # The cross-process channel when Redis is off (issue 11): "memory" for one process,
    # "postgres" for several on one database (queue, cancels, run streams over it).
    # Ignored when redis.enabled. AEGRA_CHANNEL.
    channel: Literal["memory", "postgres"] = "memory"


class PostgresCfg(_Section, frozen=True):
    url: str | None = None  # DATABASE_URL wins over the POSTGRES_* parts
    user: str = "postgres"
    password: str = ""
    host: str = "localhost"
    port: int = 5432
    db: str = "aegra"
    pool_min_size: int = 1
    pool_max_size: int = 10  # asyncpg pool for our tables
    checkpointer_pool_max_size: int = 10  # psycopg pool for LangGraph's checkpointer + store
    run_migrations_on_startup: bool = True
    connect_timeout_s: float = 10.0
    startup_wait_s: float = 30.0  # how long startup waits for PostgreSQL to accept connections

    def dsn(self) -> str:
        if self.url:
            return self.url
        auth = quote(self.user, safe="")
        if self.password:
            auth += ":" + quote(self.password, safe="")
        return f"postgresql://{auth}@{self.host}:{self.port}/{quote(self.db, safe='')}"


class RedisCfg(_Section, frozen=True):
    enabled: bool = False  # REDIS_BROKER_ENABLED
    url: str = "redis://localhost:6379/0"
    # How long a run's stream events wait for company before they are published: one
    # Lua call and one pub/sub message per batch instead of per 3 events.
    publish_linger_s: float = 0.01
    # Connections to Redis at most; past them a command waits up to pool_timeout_s for a
    # free one (redis-py's own pool raises at once past 100: a burst of runs, each
    # publishing and replaying, then fell back to the local log and lost streams).
    max_connections: int = 100
    pool_timeout_s: float = 10.0


class WorkerCfg(_Section, frozen=True):
    count: int = 3
    jobs_per_worker: int = 10  # the floor: a guaranteed minimum per worker loop
    # The ceiling the capacity actor may grow each loop to while the process is calm
    # (domain/capacity.py); equal to jobs_per_worker (or lower) = fixed capacity.
    jobs_per_worker_max: int = 100
    capacity_interval_s: float = 1.0
    capacity_lag_high_s: float = 0.1  # loop lag above this shrinks capacity
    capacity_cpu_high: float = 0.85  # process CPU (cores) above this shrinks capacity
    job_timeout_s: float = 3600.0
    max_retries: int = 3


class LeaseCfg(_Section, frozen=True):
    duration_s: float = 30.0
    heartbeat_interval_s: float = 10.0


class ReaperCfg(_Section, frozen=True):
    interval_s: float = 15.0
    stuck_pending_threshold_s: float = 120.0
    postgres_poll_interval_s: float = 5.0


class SweeperCfg(_Section, frozen=True):
    """The TTL sweeper (supervisor/sweeper.py, docs/ttl.md)."""
    enabled: bool = True
    # 0: the project's checkpointer.ttl.sweep_interval_minutes, else 5 minutes.
    interval_s: float = 0.0
    batch_size: int = 10  # threads per claim, each batch one short transaction
    pause_s: float = 0.05  # least rest between the batches of one sweep
    # Most of its time a sweep spends in transactions: the rest after a batch is
    # stretched to match, room for live traffic (bench/ttl_sweep.py).
    max_duty: float = 0.05


class ShutdownCfg(_Section, frozen=True):
    drain_timeout_s: float = 30.0
    # After the drain: how long open HTTP connections (idle keep-alives, streams of runs
    # handed back, which the SDK resumes elsewhere through Location) get to close.
    http_grace_s: float = 1.0


class CronCfg(_Section, frozen=True):
    enabled: bool = True
    max_per_user: int = 100
    allow_seconds_schedule: bool = False
    tick_interval_s: float = 1.0


class SupervisorCfg(_Section, frozen=True):
    max_restarts: int = 5  # crashes of one actor inside restart_window_s before the process exits
    restart_window_s: float = 60.0
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 30.0
    outage_backoff_max_s: float = 5.0  # retry cap while PostgreSQL/Redis is unreachable


class HttpCfg(_Section, frozen=True):
    max_body_bytes: int = 10 * 1024 * 1024
    keepalive_interval_s: float = 5.0  # SSE comments and long-poll newlines
    enable_metrics: bool = True  # ENABLE_PROMETHEUS_METRICS
    log_requests: bool = False  # one line per request at INFO costs CPU; opt in
    cors_allow_origins: tuple[str, ...] = ("*",)


class StreamCfg(_Section, frozen=True):
    # A run's replay buffer (what late joiners and reconnects get) keeps at most this
    # many of its newest events and bytes; live subscribers still get every event.
    replay_max_events: int = 10_000
    replay_max_bytes: int = 16 * 1024 * 1024
    thread_idle_s: float = 30.0  # a thread join stream with nothing to send ends


class LogCfg(_Section, frozen=True):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    format: Literal["auto", "json", "console"] = "auto"


class AuthCfg(_Section, frozen=True):
    type: Literal["noop", "custom"] = "noop"
    # AEGRA_ADMIN_TOKEN: the bearer token of /admin/*; "" turns /admin/* off (404).
    admin_token: str = ""


class UiCfg(_Section, frozen=True):
    # Generative UI bundles (aegra.json ``ui``), built with Node at startup.
    cache_dir: str = ""  # esbuild & co., installed once; "" = $XDG_CACHE_HOME/aegra/ui
    build_dir: str = ""  # built bundles; "" = <project>/.aegra/ui
    build_timeout_s: float = 300.0  # the first build also installs the toolchain


class RunsCfg(_Section, frozen=True):
    # A run on a thread waiting on interrupt(): "allow" admits it (the platform's
    # behaviour); "require_resume" refuses one that would discard the question (409).
    # Per request: the x-aegra-interrupt-admission header (domain/interrupt_admission.py).
    interrupt_admission: Literal["allow", "require_resume"] = "allow"


class WebhookDeliveryCfg(_Section, frozen=True):
    # The durable webhook outbox (docs/webhooks.md). Secret from env only.
    secret: str = ""  # AEGRA_WEBHOOK_SECRET, "whsec_" + base64; "" sends unsigned
    poll_interval_s: float = 1.0  # how often each instance looks for due deliveries
    retry_window_s: float = 24 * 3600.0  # no attempt starts later than this after the run
    initial_backoff_s: float = 5.0
    max_backoff_s: float = 3600.0
    jitter: float = 0.5  # fraction of each delay taken off at random
    concurrency: int = 16  # attempts in flight per instance
    timeout_s: float = 10.0  # one attempt, all included
    # Delivered and failed deliveries (and their attempt logs) are deleted after this;
    # 0 keeps them forever. Pending ones are never pruned.
    retention_s: float = 7 * 86400.0
    prune_interval_s: float = 3600.0  # how often each instance prunes


class Config(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    server: ServerCfg = ServerCfg()
    postgres: PostgresCfg = PostgresCfg()
    redis: RedisCfg = RedisCfg()
    worker: WorkerCfg = WorkerCfg()
    lease: LeaseCfg = LeaseCfg()
    reaper: ReaperCfg = ReaperCfg()
    shutdown: ShutdownCfg = ShutdownCfg()
    cron: CronCfg = CronCfg()
    supervisor: SupervisorCfg = SupervisorCfg()
    http: HttpCfg = HttpCfg()
    stream: StreamCfg = StreamCfg()
    log: LogCfg = LogCfg()
    auth: AuthCfg = AuthCfg()
    ui: UiCfg = UiCfg()
    webhooks: WebhookDeliveryCfg = WebhookDeliveryCfg()
    sweeper: SweeperCfg = SweeperCfg()
    runs: RunsCfg = RunsCfg()


# Product-document environment names -> (section, key).
ENV_NAMES: dict[str, tuple[str, str]] = {
    "PORT": ("server", "port"),
    "AEGRA_CONFIG": ("server", "graphs_file"),
    "AEGRA_CHANNEL": ("server", "channel"),
    "DATABASE_URL": ("postgres", "url"),
    "POSTGRES_USER": ("postgres", "user"),
    "POSTGRES_PASSWORD": ("postgres", "password"),
    "POSTGRES_HOST": ("postgres", "host"),
    "POSTGRES_PORT": ("postgres", "port"),
    "POSTGRES_DB": ("postgres", "db"),
    "POSTGRES_POOL_MIN_SIZE": ("postgres", "pool_min_size"),
    "POSTGRES_POOL_MAX_SIZE": ("postgres", "pool_max_size"),
    "CHECKPOINTER_POOL_MAX_SIZE": ("postgres", "checkpointer_pool_max_size"),
    "RUN_MIGRATIONS_ON_STARTUP": ("postgres", "run_migrations_on_startup"),
    "REDIS_BROKER_ENABLED": ("redis", "enabled"),
    "REDIS_URL": ("redis", "url"),
    "WORKER_COUNT": ("worker", "count"),
    "N_JOBS_PER_WORKER": ("worker", "jobs_per_worker"),
    "N_JOBS_PER_WORKER_MAX": ("worker", "jobs_per_worker_max"),
    "BG_JOB_TIMEOUT_SECS": ("worker", "job_timeout_s"),
    "BG_JOB_MAX_RETRIES": ("worker", "max_retries"),
    "LEASE_DURATION_SECONDS": ("lease", "duration_s"),
    "HEARTBEAT_INTERVAL_SECONDS": ("lease", "heartbeat_interval_s"),
    "REAPER_INTERVAL_SECONDS": ("reaper", "interval_s"),
    "STUCK_PENDING_THRESHOLD_SECONDS": ("reaper", "stuck_pending_threshold_s"),
    "POSTGRES_POLL_INTERVAL_SECONDS": ("reaper", "postgres_poll_interval_s"),
    "WORKER_DRAIN_TIMEOUT": ("shutdown", "drain_timeout_s"),
    "CRON_ENABLED": ("cron", "enabled"),
    "CRON_MAX_PER_USER": ("cron", "max_per_user"),
    "CRON_ALLOW_SECONDS_SCHEDULE": ("cron", "allow_seconds_schedule"),
    "ENABLE_PROMETHEUS_METRICS": ("http", "enable_metrics"),
    "LOG_LEVEL": ("log", "level"),
    "LOG_FORMAT": ("log", "format"),
    "AUTH_TYPE": ("auth", "type"),
    "AEGRA_ADMIN_TOKEN": ("auth", "admin_token"),
    "AEGRA_WEBHOOK_SECRET": ("webhooks", "secret"),
    "AEGRA_WEBHOOK_POLL_INTERVAL_SECONDS": ("webhooks", "poll_interval_s"),
    "AEGRA_WEBHOOK_RETRY_WINDOW_SECONDS": ("webhooks", "retry_window_s"),
    "AEGRA_WEBHOOK_INITIAL_BACKOFF_SECONDS": ("webhooks", "initial_backoff_s"),
    "AEGRA_WEBHOOK_MAX_BACKOFF_SECONDS": ("webhooks", "max_backoff_s"),
    "AEGRA_WEBHOOK_CONCURRENCY": ("webhooks", "concurrency"),
    "AEGRA_WEBHOOK_TIMEOUT_SECONDS": ("webhooks", "timeout_s"),
    "AEGRA_WEBHOOK_RETENTION_SECONDS": ("webhooks", "retention_s"),
    "AEGRA_INTERRUPT_ADMISSION": ("runs", "interrupt_admission"),
}
SECRET_KEYS = {("postgres", "password"), ("postgres", "url"), ("redis", "url"),
               ("auth", "admin_token"), ("webhooks", "secret")}
LIST_KEYS = {("http", "cors_allow_origins")}  # comma-separated in the environment
_GENERIC_ENV = re.compile(r"^AEGRA__([A-Z0-9_]+?)__([A-Z0-9_]+)$")
_ERR_PATH = re.compile(r"at `\$\.([A-Za-z0-9_]+)(?:\.([A-Za-z0-9_]+))?")
_UNKNOWN = re.compile(r"unknown field `([^`]+)`")


class Loaded(msgspec.Struct, frozen=True, kw_only=True):
    config: Config
    sources: dict[str, str]  # "section.key" -> "default" | "supervisor.toml" | "env NAME"

    def describe(self) -> list[tuple[str, str, str]]:
        """(key, value, source) rows for ``aegra serve --check``, secrets masked."""
        rows = []
        raw = msgspec.to_builtins(self.config)
        for section, values in raw.items():
            for key, value in values.items():
                if (section, key) in SECRET_KEYS and value:
                    shown = _mask(str(value))
                elif isinstance(value, str) and "://" in value:
                    shown = repr(_mask(value))  # any URL may carry a password
                else:
                    shown = repr(value)
                name = f"{section}.{key}"
                rows.append((name, shown, self.sources.get(name, "default")))
        return rows


_SECRET_PARAM = re.compile(r"pass|pwd|secret|token|key", re.IGNORECASE)


def _mask(value: str) -> str:
    """Hide every password a URL can carry (``user:pass@``, ``:pass@``, ``?password=``),
    or a whole bare secret. A URL that cannot be parsed is hidden whole."""
    if "://" not in value:
        return "****"
    try:
        parts = urlsplit(value)
    except ValueError:
        return "****"
    netloc = parts.netloc
    userinfo, at, hostport = netloc.rpartition("@")  # the last @: passwords may hold one
    if at and ":" in userinfo:
        netloc = f"{userinfo.split(':', 1)[0]}:****@{hostport}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode([(k, "****" if _SECRET_PARAM.search(k) else v) for k, v in pairs],
                          safe="/:*")
    return parts._replace(netloc=netloc, query=query).geturl()


def exposed_without_auth(config: Config) -> str | None:
    """A warning when the server listens beyond loopback with no authentication."""
    if config.auth.type != "noop":
        return None
    host = config.server.host.strip("[]")
    if host == "localhost":
        return None
    try:
        if ipaddress.ip_address(host).is_loopback:
            return None
    except ValueError:
        pass  # a host name: assume it is reachable from elsewhere
    return (f"listening on {config.server.host}:{config.server.port} with AUTH_TYPE=noop: "
            "anyone who can reach this port can read and run everything; set AUTH_TYPE=custom "
            "with an auth.path in aegra.json, or bind --host 127.0.0.1")


def load(toml_path: str | Path | None = None, environ: Mapping[str, str] | None = None,
         cli: Mapping[str, Any] | None = None) -> Loaded:
    """Merge the sources (defaults, toml, env, then command-line flags as "section.key");
    raise ConfigError naming key, value and source."""
    environ = os.environ if environ is None else environ
    data: dict[str, dict[str, Any]] = {}
    sources: dict[str, str] = {}
    origin = "supervisor.toml"
    if toml_path is None and Path("supervisor.toml").is_file():
        toml_path = "supervisor.toml"
    if toml_path is not None:
        origin = str(toml_path)
        try:
            raw = tomllib.loads(Path(toml_path).read_text())
        except FileNotFoundError:
            raise ConfigError(f"config error: {toml_path}: file not found") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config error: {toml_path}: invalid TOML: {exc}") from None
        for section, values in raw.items():
            if not isinstance(values, dict):
                raise ConfigError(
                    f"config error: {section} = {values!r} ({origin}): expected a [section] table"
                )
            data[section] = dict(values)
            for key in values:
                sources[f"{section}.{key}"] = origin
    for name, value in environ.items():
        target = ENV_NAMES.get(name)
        if target is None:
            match = _GENERIC_ENV.match(name)
            if match is None:
                continue
            target = (match.group(1).lower(), match.group(2).lower())
        if value == "" and target != ("postgres", "password"):
            continue  # an empty variable means "not set" (compose files often pass VAR=)
        section, key = target
        data.setdefault(section, {})[key] = (
            [v.strip() for v in value.split(",") if v.strip()] if target in LIST_KEYS else value)
        sources[f"{section}.{key}"] = f"env {name}"
    for dotted, value in (cli or {}).items():
        section, key = dotted.split(".", 1)
        data.setdefault(section, {})[key] = value
        sources[dotted] = f"--{key} flag"
    # DATABASE_URL wins over POSTGRES_*: the parts are ignored, as the product documents say.
    try:
        config = msgspec.convert(data, Config, strict=False)
    except msgspec.ValidationError as exc:
        raise ConfigError(_explain(str(exc), data, sources, origin)) from None
    _check_ranges(config, sources)
    return Loaded(config=config, sources=sources)


def _explain(message: str, data: dict[str, Any], sources: dict[str, str], origin: str) -> str:
    unknown = _UNKNOWN.search(message)
    path = _ERR_PATH.search(message)
    reason = message.split(" - at ")[0]
    if unknown:
        field = unknown.group(1)
        section = path.group(1) if path else None
        key = f"{section}.{field}" if section else field
        value = data.get(section, {}).get(field) if section else data.get(field)
        src = sources.get(key, origin)
        what = "unknown setting" if section else "unknown section"
        return f"config error: {key} = {value!r} ({src}): {what}"
    if path:
        section, key = path.group(1), path.group(2)
        if key is None:
            return f"config error: {section} ({origin}): {reason}"
        value = data.get(section, {}).get(key)
        src = sources.get(f"{section}.{key}", "default")
        return f"config error: {section}.{key} = {value!r} ({src}): {reason.lower()}"
    return f"config error: {message}"


def _webhook_checks(w: WebhookDeliveryCfg) -> list[tuple[str, float, bool, str]]:
    return [
        ("webhooks.poll_interval_s", w.poll_interval_s, w.poll_interval_s > 0, "must be > 0"),
        ("webhooks.retry_window_s", w.retry_window_s, w.retry_window_s >= 0, "must be >= 0"),
        ("webhooks.initial_backoff_s", w.initial_backoff_s, w.initial_backoff_s > 0,
         "must be > 0"),
        ("webhooks.max_backoff_s", w.max_backoff_s, w.max_backoff_s >= w.initial_backoff_s,
         "must be >= initial_backoff_s"),
        ("webhooks.jitter", w.jitter, 0 <= w.jitter <= 1, "must be between 0 and 1"),
        ("webhooks.concurrency", w.concurrency, 1 <= w.concurrency <= 1000,
         "must be between 1 and 1000"),
        ("webhooks.timeout_s", w.timeout_s, w.timeout_s > 0, "must be > 0"),
        ("webhooks.retention_s", w.retention_s, w.retention_s >= 0, "must be >= 0"),
        ("webhooks.prune_interval_s", w.prune_interval_s, w.prune_interval_s > 0,
         "must be > 0"),
    ]


def _check_ranges(config: Config, sources: dict[str, str]) -> None:
    checks: list[tuple[str, float, bool, str]] = [
        ("server.port", config.server.port, 0 <= config.server.port <= 65535, "must be 0-65535"),
        ("worker.count", config.worker.count, config.worker.count >= 1, "must be >= 1"),
        ("worker.jobs_per_worker", config.worker.jobs_per_worker,
         config.worker.jobs_per_worker >= 1, "must be >= 1"),
        ("worker.jobs_per_worker_max", config.worker.jobs_per_worker_max,
         1 <= config.worker.jobs_per_worker_max <= 10_000, "must be between 1 and 10000"),
        ("worker.capacity_interval_s", config.worker.capacity_interval_s,
         config.worker.capacity_interval_s > 0, "must be > 0"),
        ("worker.capacity_lag_high_s", config.worker.capacity_lag_high_s,
         config.worker.capacity_lag_high_s > 0, "must be > 0"),
        ("worker.capacity_cpu_high", config.worker.capacity_cpu_high,
         0.1 < config.worker.capacity_cpu_high <= 64, "must be between 0.1 and 64"),
        ("worker.max_retries", config.worker.max_retries, config.worker.max_retries >= 0,
         "must be >= 0"),
        ("lease.duration_s", config.lease.duration_s, config.lease.duration_s > 0, "must be > 0"),
        ("redis.publish_linger_s", config.redis.publish_linger_s,
         0 <= config.redis.publish_linger_s <= 1, "must be between 0 and 1"),
        ("redis.max_connections", config.redis.max_connections,
         4 <= config.redis.max_connections <= 10_000, "must be between 4 and 10000"),
        ("redis.pool_timeout_s", config.redis.pool_timeout_s,
         0 < config.redis.pool_timeout_s <= 300, "must be > 0 and at most 300"),
        ("lease.heartbeat_interval_s", config.lease.heartbeat_interval_s,
         0 < config.lease.heartbeat_interval_s < config.lease.duration_s,
         "must be > 0 and below lease.duration_s"),
        ("reaper.interval_s", config.reaper.interval_s, config.reaper.interval_s > 0,
         "must be > 0"),
        ("sweeper.interval_s", config.sweeper.interval_s, config.sweeper.interval_s >= 0,
         "must be >= 0"),
        ("sweeper.batch_size", config.sweeper.batch_size,
         1 <= config.sweeper.batch_size <= 10_000, "must be between 1 and 10000"),
        ("sweeper.pause_s", config.sweeper.pause_s, config.sweeper.pause_s >= 0,
         "must be >= 0"),
        ("sweeper.max_duty", config.sweeper.max_duty, 0 < config.sweeper.max_duty <= 1,
         "must be > 0 and <= 1"),
        ("shutdown.drain_timeout_s", config.shutdown.drain_timeout_s,
         config.shutdown.drain_timeout_s >= 0, "must be >= 0"),
        ("cron.max_per_user", config.cron.max_per_user, config.cron.max_per_user >= 0,
         "must be >= 0"),
        ("stream.replay_max_events", config.stream.replay_max_events,
         config.stream.replay_max_events >= 1, "must be >= 1"),
        ("stream.replay_max_bytes", config.stream.replay_max_bytes,
         config.stream.replay_max_bytes >= 1, "must be >= 1"),
        ("stream.thread_idle_s", config.stream.thread_idle_s,
         config.stream.thread_idle_s > 0, "must be > 0"),
        ("postgres.pool_max_size", config.postgres.pool_max_size,
         config.postgres.pool_max_size >= config.postgres.pool_min_size >= 0,
         "must be >= pool_min_size"),
        *_webhook_checks(config.webhooks),
    ]
    for key, value, ok, why in checks:
        if not ok:
            raise ConfigError(
                f"config error: {key} = {value!r} ({sources.get(key, 'default')}): {why}"
            )
