"""Is a request hookwatch's own? The Host it names (DNS rebinding) and the site a change
comes from (cross-site request forgery).

https://owasp.org/www-community/attacks/csrf and https://fetch.spec.whatwg.org/#origin-header:
browsers send `Origin` on every cross-origin POST, PUT, PATCH and DELETE, form or fetch;
`Origin: null` comes from sandboxed frames, data: URLs and some redirects, never from our page.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from hookwatch.dashboard.auth import Scope, header
from hookwatch.dashboard.policy import Access

FORWARDING = (b"forwarded", b"x-forwarded-for", b"x-real-ip")


def _hostname(value: str) -> str | None:
    try:
        return urlsplit("//" + value).hostname  # lower case, brackets and port removed
    except ValueError:
        return None


def is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def host_problem(scope: Scope, access: Access) -> str | None:
    """Why the Host header is not a name of hookwatch's, or None.

    IP literals are always accepted (a rebinding needs a name the attacker controls; a load
    balancer's check or a person may use the address); names only when they are the public
    URL's, the listening address's or localhost.
    """
    value = header(scope, b"host")
    if value is None:
        return None  # HTTP/1.0 without Host: no browser sends that
    name = _hostname(value)
    if name is not None and (is_ip(name) or name.rstrip(".") in access.hosts):
        return None
    known = ", ".join(sorted(access.hosts))
    return (f"this hookwatch does not answer to the name in Host ({value[:100]!r}); it answers "
            f"to its IP addresses and {known}: set HOOKWATCH_PUBLIC_URL to the URL people use")


def _same(url: str, scope: Scope, access: Access) -> bool:
    parts = urlsplit(url)
    if access.public_origin and f"{parts.scheme}://{parts.netloc}".lower() == access.public_origin:
        return True
    host = header(scope, b"host")
    return host is not None and parts.scheme in ("http", "https") and (
        parts.netloc.lower() == host.lower())


def cross_site(scope: Scope, access: Access) -> str | None:
    """Why this change comes from another site, or None when it is hookwatch's own (or from a
    client that is no browser: no Origin, no Referer, no Sec-Fetch-Site)."""
    site = header(scope, b"sec-fetch-site")
    if site in ("cross-site", "same-site"):
        return f"the browser says this request comes from another site (Sec-Fetch-Site: {site})"
    origin = header(scope, b"origin")
    if origin is not None:
        if origin.strip() == "null":
            return "a request with Origin: null (a sandboxed frame or a data: page) cannot change"
        if not _same(origin, scope, access):
            return "a page on another site cannot change anything here"
        return None
    referer = header(scope, b"referer")
    if referer and not _same(referer, scope, access):
        return "a page on another site (by its Referer) cannot change anything here"
    return None


def from_afar(scope: Scope) -> bool:
    """Whether an open (loopback) dashboard was reached from outside this machine: through a
    proxy that says so, or from an address that is not loopback."""
    if any(header(scope, name) for name in FORWARDING):
        return True
    client = scope.get("client")
    host = client[0] if client else None
    if host and is_ip(host):
        return not ipaddress.ip_address(host).is_loopback
    return False  # no address, or a test client's name
