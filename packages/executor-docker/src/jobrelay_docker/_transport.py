"""A unix-socket transport for docker-py that closes the socket when connect fails.

docker-py's ``UnixHTTPConnection.connect`` opens a socket and connects it; when the
daemon is gone (a stale socket file answers "connection refused"), the socket is
never closed and surfaces later as a ``ResourceWarning``. An executor that retries
against a restarting daemon would leak one per attempt. This adapter is the same
with that one difference, mounted on each client this package makes.
"""

from __future__ import annotations

import socket

import docker
from docker.transport import unixconn

__all__ = ["use_safe_unix_transport"]

_PREFIX = "http+docker://"


class _Connection(unixconn.UnixHTTPConnection):  # type: ignore[misc]
    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(self.timeout)
            sock.connect(self.unix_socket)
        except BaseException:
            sock.close()
            raise
        self.sock = sock


class _Pool(unixconn.UnixHTTPConnectionPool):  # type: ignore[misc]
    def _new_conn(self) -> _Connection:
        return _Connection(self.base_url, self.socket_path, self.timeout)


class _Adapter(unixconn.UnixHTTPAdapter):  # type: ignore[misc]
    def get_connection(self, url: str, proxies: object = None) -> _Pool:  # noqa: ARG002
        with self.pools.lock:
            pool = self.pools.get(url)
            if pool:
                return pool  # type: ignore[no-any-return]
            pool = _Pool(url, self.socket_path, self.timeout, maxsize=self.max_pool_size)
            self.pools[url] = pool
        return pool


def use_safe_unix_transport(api: docker.APIClient) -> docker.APIClient:
    """Mount the closing transport on ``api`` if it talks over a unix socket; return it."""
    current = api.adapters.get(_PREFIX)
    if isinstance(current, unixconn.UnixHTTPAdapter) and not isinstance(current, _Adapter):
        adapter = _Adapter(
            current.socket_path, timeout=current.timeout, max_pool_size=current.max_pool_size
        )
        current.close()
        api.mount(_PREFIX, adapter)
    return api
