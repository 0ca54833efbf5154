"""What a request must show before anything serves it, against browsers turned into weapons.

A node with no tokens (the loopback default) trusts whoever can connect, and a web page can
make the browser connect: by DNS rebinding (a name of the attacker's that resolves to
127.0.0.1, so the page reads every key as "same origin") or by plain cross-site requests that
need no CORS preflight (a ``text/plain`` POST, a WebSocket). So, as etcd's host whitelist and
Redis's protected mode do:

1. **Host.** On a node without tokens (or with ``server.allowed_hosts`` set), the ``Host``
   must be an IP address, ``localhost`` (or a name under ``.localhost``), the host the node
   binds, or match ``server.allowed_hosts`` (``name``, ``.domain`` for every name under it,
   ``*`` for any). A rebinding page can only send its own name, so it is refused. A node with
   tokens is safe from it (the page has no token) and checks ``Host`` only when told to.
2. **Origin.** A request that changes state (any method but GET, HEAD and OPTIONS) or opens a
   WebSocket, sent by a browser (it carries ``Origin`` or ``Sec-Fetch-Site``), must come from
   the node's own origin or from one of ``server.cors_origins``, which also get CORS headers.
   Programs (curl, the Python client, other nodes) send neither header and are not affected.

JSON bodies are accepted only with a JSON content type (``dependencies.json_body`` and the
batch endpoint), so a form or ``text/plain`` body cannot pass for one.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any

from ..settings import ServerSettings
from .errors import CrossSiteRequest, HostNotAllowed

__all__ = ["CORS_HEADERS", "RequestGuard"]

_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_SAME_ORIGIN_SITES = (b"same-origin", b"none")  # "none": the user typed or bookmarked it
_WILDCARD_HOSTS = frozenset({"0.0.0.0", "::", ""})
_KNOWN_MAX = 256

# What a configured origin's pages may send and read (starlette's CORSMiddleware options).
CORS_HEADERS: dict[str, Any] = {
    "allow_methods": ["GET", "HEAD", "PUT", "POST", "DELETE"],
    "allow_headers": ["authorization", "content-type", "if-match", "if-none-match",
                      "last-event-id"],
    "expose_headers": ["etag", "x-kvdb-origin", "x-kvdb-backup-seq"],
    "max_age": 600,
}  # fmt: skip


class RequestGuard:
    def __init__(self, server: ServerSettings) -> None:
        self.check_hosts = not server.tokens or bool(server.allowed_hosts)
        names = {name.lower() for name in server.allowed_hosts}
        bound = server.host.lower()
        if bound not in _WILDCARD_HOSTS:
            names.add(bound)
        self._any_host = "*" in names
        self._names = frozenset(n for n in names if not n.startswith("."))
        self._domains = tuple(n for n in names if n.startswith("."))
        self._any_origin = "*" in server.cors_origins
        self.cors_origins = frozenset(server.cors_origins)
        self._known: dict[bytes, None] = {}  # Host values already allowed

    # -- Host -----------------------------------------------------------------------------------

    def check_host(self, host: bytes | None) -> None:
        """Raise ``HostNotAllowed`` unless ``host`` (the header's value) names this node."""
        if not self.check_hosts or host is None or host in self._known:
            return
        name = _host_name(host.decode("latin-1"))
        if not self._allowed(name):
            raise HostNotAllowed(
                f"Host {name[:80]!r} is not a name of this node, so the request was refused "
                "(a page of another site that resolves its name to this node would send it): "
                "reach the node by IP address or localhost, or add the name to "
                "server.allowed_hosts"
            )
        if len(self._known) >= _KNOWN_MAX:
            self._known.clear()
        self._known[host] = None

    def _allowed(self, name: str) -> bool:
        if self._any_host or name in self._names or _is_local(name):
            return True
        return any(name == d[1:] or name.endswith(d) for d in self._domains)

    # -- Origin ---------------------------------------------------------------------------------

    def check_origin(self, method: str, headers: Mapping[bytes, bytes], websocket: bool) -> None:
        """Raise ``CrossSiteRequest`` if a browser page of another origin, not configured in
        ``server.cors_origins``, sends a request that changes state or opens a WebSocket."""
        if method in _SAFE_METHODS and not websocket:
            return
        origin = headers.get(b"origin")
        site = headers.get(b"sec-fetch-site")
        if origin is None and site is None:
            return  # not a browser
        if origin is not None and self.allows_origin(origin):
            return
        if site is not None:
            if site in _SAME_ORIGIN_SITES:
                return
        elif origin is not None and _netloc(origin) == headers.get(b"host", b"").lower():
            return
        shown = (origin or b"(no Origin)").decode("latin-1")[:80]
        raise CrossSiteRequest(
            f"a page of origin {shown!r} may not change this node's state or subscribe to it "
            "(cross-site request refused); if that site is yours, add its origin to "
            "server.cors_origins",
            origin=shown,
        )

    def allows_origin(self, origin: bytes) -> bool:
        return self._any_origin or origin.decode("latin-1").lower() in self.cors_origins

    def refusal(self, scope: Mapping[str, Any]) -> Exception | None:
        """Why an ASGI ``http`` or ``websocket`` request may not be served, or None."""
        headers = dict(scope["headers"])
        websocket = scope["type"] == "websocket"
        try:
            self.check_host(headers.get(b"host"))
            self.check_origin("GET" if websocket else scope["method"], headers, websocket)
        except (HostNotAllowed, CrossSiteRequest) as exc:
            return exc
        return None


def _host_name(host: str) -> str:
    """The name in a ``Host`` value, lowercase, without the port (``[::1]:8080`` -> ``::1``)."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _is_local(name: str) -> bool:
    """An IP literal (a rebinding page cannot send one as its Host), or a loopback name."""
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def _netloc(origin: bytes) -> bytes:
    """``host[:port]`` of an ``Origin`` value (``b""`` for ``null``)."""
    _, separator, rest = origin.lower().partition(b"://")
    return rest if separator else b""
