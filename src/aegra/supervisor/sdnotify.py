"""systemd notification over ``$NOTIFY_SOCKET``, with the standard library only."""

from __future__ import annotations

import os
import socket

from aegra.logs import get_logger

log = get_logger("aegra.sdnotify")


class Notifier:
    """Sends READY=1 / STOPPING=1 / WATCHDOG=1. A no-op when not under systemd."""

    def __init__(self, address: str | None = None) -> None:
        address = os.environ.get("NOTIFY_SOCKET") if address is None else address
        self._address: str | None = None
        if address:
            # "@name" is Linux's abstract namespace, spelled with a leading NUL on the wire.
            self._address = "\0" + address[1:] if address.startswith("@") else address
        self._warned = False

    @property
    def enabled(self) -> bool:
        return self._address is not None

    def notify(self, message: str) -> bool:
        if self._address is None:
            return False
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.setblocking(False)
                sock.sendto(message.encode(), self._address)
            return True
        except OSError as exc:
            if not self._warned:
                self._warned = True
                log.warning("sdnotify.failed", message=message, error=str(exc))
            return False


def watchdog_interval_s(environ: dict[str, str] | None = None) -> float | None:
    """The systemd watchdog period in seconds, if it applies to this process."""
    env = os.environ if environ is None else environ
    usec = env.get("WATCHDOG_USEC")
    if not usec:
        return None
    pid = env.get("WATCHDOG_PID")
    if pid and pid.isdigit() and int(pid) != os.getpid():
        return None
    try:
        value = int(usec)
    except ValueError:
        return None
    return value / 1_000_000 if value > 0 else None
