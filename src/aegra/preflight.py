"""Checks ``aegra dev`` makes before it starts or creates anything, each answering with the
operator's one line (or None when all is well)."""

from __future__ import annotations

import errno
import os
import socket
from pathlib import Path

from aegra import config as cfgmod
from aegra import project as projmod

# ``aegra serve``'s exit code when its address cannot be bound: restarting cannot help.
EXIT_CANNOT_LISTEN = 3


def missing_project(config: str | None, env_file: str) -> str | None:
    """Why ``aegra dev`` must not start here (no project file), else None. Without one it
    would serve no graphs and create a database in whatever folder it was run from."""
    env = dict(os.environ)
    if Path(env_file).is_file():
        projmod.apply_env(projmod.parse_dotenv(Path(env_file).read_text()), env)
    try:
        found = projmod.find(config or env.get("AEGRA_CONFIG"))
    except cfgmod.ConfigError:
        return None  # a named file that is missing: prepare() reports it with its key
    if found is not None:
        return None
    return (f"no aegra.json or langgraph.json found in {Path.cwd()}: create a project with"
            " `aegra init`, or pass --config PATH")


def port_in_use(host: str, port: int) -> str | None:
    """Why ``host:port`` cannot be listened on, else None; checked before the (slow)
    embedded database starts. Binds as hypercorn does (SO_REUSEADDR), then lets go."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                   flags=socket.AI_PASSIVE)
    except OSError as exc:
        return f"cannot listen on {host}:{port}: {exc}"
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return f"port {port} on {host} is in use: {exc}"
            return f"cannot listen on {host}:{port}: {exc}"
    return None
