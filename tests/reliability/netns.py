"""A second host on this machine: a network namespace joined to this one by a veth pair.

`RemoteHost` makes `tuner-<id>` with its own loopback and one link, `<host address>/30` here and
`<namespace address>/30` there (10.231.x.y, picked free), and makes the servers a worker needs
reachable only over that link: TCP forwarders bound to the host address for PostgreSQL and Redis
(which listen on 127.0.0.1, not reachable from the namespace), and moto's standalone S3 server
bound to the host address. A worker started with `worker_prefix` (`ip netns exec NAME`) has no
route to 127.0.0.1 of this host: everything it reaches goes over the veth link.

Everything is torn down by `close()` (namespace, veth, forwarders, moto), also after a failure.
Where namespaces cannot be made (not root, no `ip`, `ip netns add` refused), `NetnsUnavailable`
carries the reason, for the caller to skip with.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
import uuid

from tests.reliability.tcp_proxy import TcpProxy
from tests.s3server import MotoServer


class NetnsUnavailable(RuntimeError):
    """Network namespaces cannot be used here (the message says why)."""


def _run(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), capture_output=True, text=True, check=check, timeout=30)


def _pick_subnet() -> tuple[str, str]:
    """A /30 in 10.231.0.0/16 that no interface of this host uses yet: (host address, namespace address)."""
    used = _run("ip", "-o", "-4", "addr", "show").stdout + _run("ip", "-4", "route", "show").stdout
    for _ in range(200):
        third, base = random.randrange(256), 4 * random.randrange(64)
        if f"10.231.{third}." not in used:
            return f"10.231.{third}.{base + 1}", f"10.231.{third}.{base + 2}"
    raise NetnsUnavailable("no free /30 in 10.231.0.0/16")


class RemoteHost:
    def __init__(self, *, postgres: tuple[str, int] | None, redis: tuple[str, int], moto: bool = True):
        self.postgres_target, self.redis_target, self.want_moto = postgres, redis, moto
        tag = uuid.uuid4().hex[:6]
        self.name = f"tuner-{tag}"
        self.veth_host, self.veth_ns = f"vt{tag}h", f"vt{tag}n"
        self.host_address = self.ns_address = ""
        self.postgres: TcpProxy | None = None
        self.redis: TcpProxy | None = None
        self.moto: MotoServer | None = None
        self._made_namespace = False

    # ------------------------------------------------------------------ set-up / tear-down

    def __enter__(self) -> RemoteHost:
        try:
            self.open()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def open(self) -> RemoteHost:
        if os.geteuid() != 0:
            raise NetnsUnavailable(f"network namespaces need root (running as uid {os.geteuid()})")
        if shutil.which("ip") is None:
            raise NetnsUnavailable("the `ip` command (iproute2) is not installed")
        made = _run("ip", "netns", "add", self.name, check=False)
        if made.returncode != 0:
            raise NetnsUnavailable(f"`ip netns add` failed: {made.stderr.strip() or made.returncode}")
        self._made_namespace = True
        self.host_address, self.ns_address = _pick_subnet()
        for command in (
                ("ip", "link", "add", self.veth_host, "type", "veth", "peer", "name", self.veth_ns),
                ("ip", "link", "set", self.veth_ns, "netns", self.name),
                ("ip", "addr", "add", f"{self.host_address}/30", "dev", self.veth_host),
                ("ip", "link", "set", self.veth_host, "up"),
                ("ip", "netns", "exec", self.name, "ip", "addr", "add", f"{self.ns_address}/30", "dev", self.veth_ns),
                ("ip", "netns", "exec", self.name, "ip", "link", "set", self.veth_ns, "up"),
                ("ip", "netns", "exec", self.name, "ip", "link", "set", "lo", "up")):
            result = _run(*command, check=False)
            if result.returncode != 0:
                raise NetnsUnavailable(f"`{' '.join(command)}` failed: {result.stderr.strip()}")
        if self.postgres_target is not None:
            self.postgres = TcpProxy(*self.postgres_target, bind=self.host_address).__enter__()
        self.redis = TcpProxy(*self.redis_target, bind=self.host_address).__enter__()
        if self.want_moto:
            self.moto = MotoServer(host=self.host_address).start()
        return self

    def close(self) -> None:
        for closer in (self.moto and self.moto.stop, self.redis and (lambda: self.redis.__exit__(None, None, None)),
                       self.postgres and (lambda: self.postgres.__exit__(None, None, None))):
            if closer:
                try:
                    closer()
                except Exception as exc:  # noqa: BLE001 - tear down the rest regardless
                    print(f"netns clean-up: {exc}", file=sys.stderr)
        self.moto = self.redis = self.postgres = None
        if self._made_namespace:
            _run("ip", "netns", "delete", self.name, check=False)  # takes its end of the veth pair with it
            self._made_namespace = False
        if _run("ip", "link", "show", self.veth_host, check=False).returncode == 0:
            _run("ip", "link", "delete", self.veth_host, check=False)

    # ------------------------------------------------------------------ use

    @property
    def worker_prefix(self) -> list[str]:
        return ["ip", "netns", "exec", self.name]

    def redis_url(self, db: int) -> str:
        return f"redis://{self.host_address}:{self.redis.port}/{db}"

    def database_url(self, user: str, password: str, name: str) -> str:
        auth = f"{user}:{password}" if password else user
        return f"postgres://{auth}@{self.host_address}:{self.postgres.port}/{name}"

    def can_connect_from_inside(self, host: str, port: int) -> bool:
        """Whether a TCP connection from inside the namespace to host:port succeeds."""
        probe = ("import socket,sys\ntry:\n socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=2)\n"
                 "except OSError:\n sys.exit(1)\n")
        return _run(*self.worker_prefix, sys.executable, "-c", probe, host, str(port), check=False).returncode == 0
