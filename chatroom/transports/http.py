"""The web app's files over HTTP, and who may open a WebSocket. No I/O but reading the
package's own files.

Only files that ship in ``chatroom/web/`` are served, by exact name: no directory
listings, no paths outside it, no file types beyond a short list. Every response
carries a strict Content-Security-Policy, so even a mistake in the app cannot run a
script, load anything from another host, or connect anywhere but this server and the
other nodes of its cluster.
"""

from __future__ import annotations

import email.utils
import http
import re
from collections.abc import Iterable
from pathlib import Path

from websockets.datastructures import Headers
from websockets.http11 import Response

__all__ = [
    "CONTENT_SECURITY_POLICY",
    "WEBSOCKET_PATH",
    "WEB_ROOT",
    "StaticFiles",
    "content_security_policy",
    "origin_allowed",
    "text_response",
]

WEBSOCKET_PATH = "/ws"
WEB_ROOT = Path(__file__).resolve().parent.parent / "web"
# An origin as --allow-origin names another node's pages: a scheme, a host of letters,
# digits, dots and hyphens (or IPv6 in brackets), a port. Only this form may become a
# connect-src source, so no configured text can end the directive or add another.
_PEER_ORIGIN = re.compile(r"(https?)://([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?")


def content_security_policy(peer_origins: Iterable[str] = ()) -> str:
    """The policy of every response: scripts, styles and connections from this host only
    (connect-src 'self' covers ws: and wss: to it), nothing inline, nothing framed, no
    plugins, no form posts anywhere.

    The chat WebSocket may also be opened on the host of each of ``peer_origins`` (the
    ``--allow-origin`` list): the other nodes of a cluster, which the page's
    ``?servers=`` parameter moves to. Any other host stays out of reach, so a link with
    ``?servers=`` naming a stranger's host cannot send the join form's passwords there.
    """
    sources = ["'self'"]
    for origin in peer_origins:
        match = _PEER_ORIGIN.fullmatch(origin.strip().rstrip("/"))
        if match is None:
            continue
        scheme, host, port = match.groups()
        source = f"{'wss' if scheme == 'https' else 'ws'}://{host.lower()}{port or ''}"
        if source not in sources:
            sources.append(source)
    return (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        f"connect-src {' '.join(sources)}; object-src 'none'; base-uri 'none'; "
        "frame-ancestors 'none'; form-action 'none'"
    )


CONTENT_SECURITY_POLICY = content_security_policy()
_OTHER_SECURITY_HEADERS = (
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("X-Frame-Options", "DENY"),
    ("Cross-Origin-Opener-Policy", "same-origin"),
    ("Cross-Origin-Resource-Policy", "same-origin"),
)
_CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".webmanifest": "application/manifest+json",
    ".txt": "text/plain; charset=utf-8",
}
# A request path names a file by letters, digits and -._ segments; anything else (dot
# segments, backslashes, percent escapes, doubled slashes) is not one of ours.
_SAFE_PATH = re.compile(r"(?:/[A-Za-z0-9_-][A-Za-z0-9._-]*)+")


class StaticFiles:
    """The files under ``root``, read once each, served as HTTP responses."""

    def __init__(self, root: Path = WEB_ROOT) -> None:
        self.root = root.resolve()
        self._cache: dict[str, bytes | None] = {}

    @property
    def has_app(self) -> bool:
        """Whether there is an app to serve (a source checkout without it has none)."""
        return self._read("/index.html") is not None

    def respond(self, method: str, path: str, *, peer_origins: Iterable[str] = ()) -> Response:
        """The response to ``method path`` (the path without its query); its page may
        open the chat WebSocket on the hosts of ``peer_origins`` too."""
        policy = content_security_policy(peer_origins)
        if method not in ("GET", "HEAD"):
            response = _response(http.HTTPStatus.METHOD_NOT_ALLOWED, b"GET only\n", policy=policy)
            response.headers["Allow"] = "GET, HEAD"
            return response
        name = "/index.html" if path == "/" else path
        body = self._read(name)
        if body is None:
            return _response(http.HTTPStatus.NOT_FOUND, b"not found\n", policy=policy)
        content_type = _CONTENT_TYPES[Path(name).suffix]
        response = _response(http.HTTPStatus.OK, body, content_type, policy=policy)
        if method == "HEAD":
            response.body = b""
        return response

    def _read(self, name: str) -> bytes | None:
        if name in self._cache:
            return self._cache[name]
        body = None
        if _SAFE_PATH.fullmatch(name) and Path(name).suffix in _CONTENT_TYPES:
            file = (self.root / name.lstrip("/")).resolve()
            if file.is_relative_to(self.root) and file.is_file():
                body = file.read_bytes()
        if len(self._cache) < 256:  # what a probe for random names can make us hold
            self._cache[name] = body
        return body


def text_response(
    status: http.HTTPStatus, body: bytes, content_type: str = "text/plain; charset=utf-8"
) -> Response:
    """A complete response with the security headers every response here carries."""
    return _response(status, body, content_type)


def _response(
    status: http.HTTPStatus,
    body: bytes,
    content_type: str = "text/plain; charset=utf-8",
    *,
    policy: str = CONTENT_SECURITY_POLICY,
) -> Response:
    headers = Headers(
        [
            ("Date", email.utils.formatdate(usegmt=True)),
            ("Content-Type", content_type),
            ("Content-Length", str(len(body))),
            ("Cache-Control", "no-cache"),
            ("Connection", "close"),
            ("Content-Security-Policy", policy),
            *_OTHER_SECURITY_HEADERS,
        ]
    )
    return Response(status.value, status.phrase, headers, body)


def origin_allowed(headers: Headers, tls: bool, allowed: Iterable[str]) -> bool:
    """Whether a WebSocket request may open: no ``Origin`` (not a browser), the origin
    of the host it was sent to, or one of ``allowed`` (``--allow-origin``).

    Browsers always send ``Origin`` with a WebSocket request, and a page cannot forge
    it, so a foreign page's request is refused here whatever its cookies.
    """
    origins = headers.get_all("Origin")
    if not origins:
        return True
    if len(origins) > 1:
        return False
    origin = origins[0].rstrip("/").lower()
    if origin in {other.rstrip("/").lower() for other in allowed}:
        return True
    hosts = headers.get_all("Host")
    return len(hosts) == 1 and origin == f"{'https' if tls else 'http'}://{hosts[0].lower()}"
