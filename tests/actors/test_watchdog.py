"""Ring 1: the loop-lag watchdog pings systemd only while the loop is healthy."""

from __future__ import annotations

import socket
import time
from functools import partial

import trio
import trio.testing

from aegra.supervisor.sdnotify import Notifier, watchdog_interval_s
from aegra.supervisor.watchdog import run_watchdog


def test_watchdog_interval_from_environment():
    assert watchdog_interval_s({}) is None
    assert watchdog_interval_s({"WATCHDOG_USEC": "4000000"}) == 4.0
    assert watchdog_interval_s({"WATCHDOG_USEC": "4000000", "WATCHDOG_PID": "1"}) is None
    assert watchdog_interval_s({"WATCHDOG_USEC": "junk"}) is None


async def test_pings_every_half_interval_and_stops_when_the_loop_stalls(tmp_path):
    # Real clock on purpose: a stall is a blocking call, which MockClock cannot express.
    path = str(tmp_path / "wd.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(path)
    listener.setblocking(False)
    lags: list[float] = []
    async with trio.open_nursery() as nursery:
        await nursery.start(partial(run_watchdog, Notifier(path), 0.4, lags.append, list))
        await trio.sleep(1.0)
        pings_before = _drain(listener)
        time.sleep(0.6)  # block the Trio thread longer than the watchdog interval
        await trio.testing.wait_all_tasks_blocked()  # the watchdog's tick measures the stall
        stalled = _drain(listener)
        await trio.sleep(0.6)
        recovered = _drain(listener)
        nursery.cancel_scope.cancel()
    assert 3 <= pings_before <= 7  # ~every 0.2 s during 1 s
    assert max(lags) >= 0.4
    assert stalled == 0  # the tick that measured the stall did not ping
    assert recovered >= 1  # healthy again: pinging resumes
    listener.close()


def _drain(sock: socket.socket) -> int:
    count = 0
    while True:
        try:
            assert sock.recv(64) == b"WATCHDOG=1"
            count += 1
        except BlockingIOError:
            return count
