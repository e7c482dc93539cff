"""The network guard of ``support.offline``, importable without the tests' package (it runs in
``sitecustomize`` of CLI subprocesses, before anything else)."""

from __future__ import annotations

import ipaddress
import socket

#: What a blocked connection raises: what an unplugged cable or a firewall gives.
MESSAGE = "network access blocked by the test suite"


def _local(host: object) -> bool:
    if host in (None, "", "localhost"):
        return True
    try:
        return ipaddress.ip_address(str(host).split("%")[0]).is_loopback
    except ValueError:
        return False


def block_network() -> None:
    """Make name lookups and connections to anything but the loopback fail with ``OSError``."""
    if getattr(socket, "_absgrad_blocked", False):
        return
    real_getaddrinfo, real_connect = socket.getaddrinfo, socket.socket.connect
    real_connect_ex = socket.socket.connect_ex

    def getaddrinfo(host, *args, **kwargs):
        if not _local(host):
            raise socket.gaierror(socket.EAI_NONAME, f"{MESSAGE} (lookup of {host})")
        return real_getaddrinfo(host, *args, **kwargs)

    def _check(address: object) -> None:
        if isinstance(address, tuple) and address and not _local(address[0]):
            raise OSError(f"{MESSAGE} (connection to {address[0]})")

    def connect(self, address):
        _check(address)
        return real_connect(self, address)

    def connect_ex(self, address):
        _check(address)
        return real_connect_ex(self, address)

    socket.getaddrinfo = getaddrinfo
    socket.socket.connect = connect
    socket.socket.connect_ex = connect_ex
    socket._absgrad_blocked = True
