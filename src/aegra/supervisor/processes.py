"""``aegra serve --processes N``: a parent running N full ``aegra serve`` children.

Owns the listening socket (bound once here, inherited by every child as
``AEGRA_LISTEN_FD``, so no child can fail to bind and the port keeps answering while one
restarts) and a ``NOTIFY_SOCKET`` of its own: it sends READY=1 upstream once every child
has sent READY=1, and STOPPING=1 when it stops. No database, no asyncio: the children
coordinate as separate instances do (``coordination_env``).

Restart: a child that exits without being asked is restarted after a jittered backoff
(``RestartPolicy``); more than ``max_restarts`` exits within the window stops all
children and the parent exits 1. SIGTERM/SIGINT are forwarded to every child, which
drains; a second signal is forwarded again (the children skip their drain). The exit code
is 0 when every child stopped cleanly after a signal.

Lifeline: each child gets the read end of a pipe whose only write end the parent holds
(``AEGRA_PARENT_FD``). When the parent dies, even SIGKILLed, the kernel closes it and the
child sees end of file and drains as on SIGTERM: children in sessions of their own would
otherwise outlive it, unsupervised, still serving the port and claiming runs, and a
restarted parent could not bind. (Not ``PR_SET_PDEATHSIG``: it fires when the *thread*
that forked exits, and Trio starts processes from its worker threads, which come and go.)
"""

from __future__ import annotations

import os
import signal
import socket
import struct
import sys
import uuid
from collections import deque

import trio

from aegra.config import Config, ConfigError
from aegra.logs import get_logger
from aegra.supervisor.http import LISTEN_FD_ENV, BindFailed
from aegra.supervisor.policy import RestartPolicy
from aegra.supervisor.sdnotify import Notifier, watchdog_interval_s

log = get_logger("aegra.processes")
_CRED = struct.Struct("3i")  # struct ucred: pid, uid, gid
LIFELINE_ENV = "AEGRA_PARENT_FD"


def lifeline_fd() -> int | None:
    """In a child of ``--processes``: the lifeline's read end (not passed on to the
    child's own subprocesses); None in a server started on its own."""
    value = os.environ.get(LIFELINE_ENV)
    if not value or not value.isdigit():
        return None
    fd = int(value)
    try:
        os.set_inheritable(fd, False)
    except OSError:  # not open: started by hand with a stale environment
        return None
    return fd


def count(value: str) -> int:
    """``--processes``: a positive number, or ``auto`` for the cores this process may use."""
    if value == "auto":
        return len(os.sched_getaffinity(0))
    if not value.isdigit() or int(value) < 1:
        raise ConfigError(f"--processes must be a positive number or auto, not {value!r}")
    return int(value)


def coordination_env(cfg: Config) -> dict[str, str]:
    """What the children need to coordinate (one queue, cancels, streams, crons once).

    The one place that decides it: Redis when it is enabled, else the PostgreSQL channel
    (``AEGRA_CHANNEL=postgres``: queue, cancels, run streams and thread events all go
    through the database the children share). The in-memory channel would give each
    child its own queue and streams, so it is never handed to children."""
    if cfg.redis.enabled:
        return {}
    return {"AEGRA_CHANNEL": "postgres"}


def child_argv(argv: list[str]) -> list[str]:
    """The parent's own command line (``sys.argv[1:]``) without ``--processes``."""
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--processes":
            skip = True
        elif not arg.startswith("--processes="):
            out.append(arg)
    return [sys.executable, "-m", "aegra", *out]


def listen(host: str, port: int, backlog: int = 2048) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # accepted sockets inherit
        sock.bind((host.strip("[]"), port))
        sock.listen(backlog)
    except OSError as exc:
        sock.close()
        raise BindFailed(host, port, exc) from None
    return sock


class Parent:
    def __init__(self, n: int, argv: list[str], sock: socket.socket, policy: RestartPolicy,
                 env: dict[str, str]) -> None:
        self.n, self.argv, self.sock, self.policy = n, argv, sock, policy
        self.upstream = Notifier()
        self.notify_name = f"@aegra-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        inherited = {k: v for k, v in os.environ.items()
                     if k not in ("WATCHDOG_USEC", "WATCHDOG_PID")}  # the parent pings
        # Both ends close-on-exec: children get the read end through pass_fds only.
        self.lifeline, self.lifeline_w = os.pipe()
        self.env = {**inherited, **env, LISTEN_FD_ENV: str(sock.fileno()),
                    "NOTIFY_SOCKET": self.notify_name, LIFELINE_ENV: str(self.lifeline)}
        self.live: dict[int, trio.Process] = {}
        self.ready: set[int] = set()
        self.announced = False
        self.stopping = trio.Event()
        self.code = 0

    async def run(self) -> int:
        notify = trio.socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        notify.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)  # sender pids
        await notify.bind("\0" + self.notify_name[1:])
        log.info("processes.starting", processes=self.n, pid=os.getpid())
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._signals)
            nursery.start_soon(self._notifications, notify)
            nursery.start_soon(self._watchdog)
            async with trio.open_nursery() as children:
                for slot in range(self.n):
                    children.start_soon(self._keep, slot)
            nursery.cancel_scope.cancel()
        notify.close()
        os.close(self.lifeline)
        os.close(self.lifeline_w)
        log.info("processes.stopped", code=self.code)
        return self.code

    def _stop(self, signum: int) -> None:
        if not self.stopping.is_set():
            self.stopping.set()
            self.upstream.notify("STOPPING=1")
        for pid, proc in list(self.live.items()):
            log.info("processes.forward", pid=pid, signal=signal.Signals(signum).name)
            proc.send_signal(signum)

    async def _signals(self) -> None:
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async for signum in signals:
                log.info("processes.signal", signal=signal.Signals(signum).name,
                         again=self.stopping.is_set())
                self._stop(signum)

    async def _keep(self, slot: int) -> None:
        """One child slot: start, wait, restart unless stopping; gives up on a crash loop."""
        crashes: deque[float] = deque()
        while not self.stopping.is_set():
            # Own process group: a terminal's ^C reaches the parent only, which forwards
            # it once (the group would deliver it twice: the second skips the drain).
            proc = await trio.lowlevel.open_process(
                self.argv, env=self.env, pass_fds=(self.sock.fileno(), self.lifeline),
                start_new_session=True)
            pid = proc.pid
            self.live[pid] = proc
            log.info("processes.child_started", slot=slot, pid=pid)
            if self.stopping.is_set():  # a signal came while it was being started
                proc.send_signal(signal.SIGTERM)
            code = await proc.wait()
            del self.live[pid]
            self.ready.discard(pid)
            if self.stopping.is_set():
                log.info("processes.child_exited", slot=slot, pid=pid, code=code)
                if code != 0 and self.code == 0:
                    self.code = 1
                return
            now = trio.current_time()
            crashes.append(now)
            while crashes and crashes[0] < now - self.policy.window_s:
                crashes.popleft()
            log.warning("processes.child_crashed", slot=slot, pid=pid, code=code,
                        crashes=len(crashes))
            if len(crashes) > self.policy.max_restarts:
                log.error("processes.crash_loop", slot=slot, crashes=len(crashes),
                          window_s=self.policy.window_s)
                self.code = 1
                self._stop(signal.SIGTERM)
                return
            with trio.move_on_after(self.policy.delay(len(crashes))):
                await self.stopping.wait()

    async def _notifications(self, notify: trio.socket.SocketType) -> None:
        while True:
            data, ancdata, _flags, _addr = await notify.recvmsg(4096, socket.CMSG_SPACE(
                _CRED.size))
            pid = next((_CRED.unpack_from(bytes(body))[0] for level, kind, body in ancdata
                        if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS),
                       None)
            if pid is None or b"READY=1" not in data.split(b"\n"):
                continue
            self.ready.add(pid)
            log.info("processes.child_ready", pid=pid)
            if (not self.announced and len(self.live) == self.n
                    and self.ready.issuperset(self.live)):
                self.announced = True
                log.info("processes.ready", processes=self.n, pids=sorted(self.live))
                self.upstream.notify("READY=1")

    async def _watchdog(self) -> None:
        interval = watchdog_interval_s()
        if interval is None:
            return
        while True:
            self.upstream.notify("WATCHDOG=1")
            await trio.sleep(interval / 2)


def main(n: int, cfg: Config, argv: list[str]) -> int:
    """Run the parent to completion; the process exit code (2: refused, 3: cannot listen)."""
    from aegra import logs
    from aegra.preflight import EXIT_CANNOT_LISTEN

    logs.setup(cfg.log.level, cfg.log.format)
    try:
        env = coordination_env(cfg)
        sock = listen(cfg.server.host, cfg.server.port)
    except ConfigError as exc:
        print(f"aegra: {exc}", file=sys.stderr)
        return 2
    except BindFailed as exc:
        print(f"aegra: {exc}", file=sys.stderr)
        return EXIT_CANNOT_LISTEN
    sup = cfg.supervisor
    policy = RestartPolicy(max_restarts=sup.max_restarts, window_s=sup.restart_window_s,
                           backoff_initial_s=sup.backoff_initial_s,
                           backoff_max_s=sup.backoff_max_s,
                           outage_backoff_max_s=sup.outage_backoff_max_s)
    with sock:
        return trio.run(Parent(n, child_argv(argv), sock, policy, env).run)

