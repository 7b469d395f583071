"""The Content-Security-Policy of the HTML pages the app serves: /docs, /redoc (and the web UI).

One policy, built here and nowhere else::

    default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:;
    object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'

Nothing loads from another origin, no inline script runs, and nothing may frame the pages.
Two allowances, each for a named need:

- ``img-src data:``: Swagger UI's stylesheet draws its icons as ``data:`` SVG images. A data
  image runs no script, so this costs nothing the rest of the policy protects.
- ``style_nonce``: ReDoc renders with styled-components, which injects ``<style>`` elements at
  run time; a page that passes a fresh nonce (``new_nonce()``) allows exactly the elements that
  carry it, instead of ``'unsafe-inline'``. Scripts never get a nonce: they are files.
"""

from __future__ import annotations

import secrets

#: The directives every page gets, in order.
DIRECTIVES: tuple[tuple[str, str], ...] = (
    ("default-src", "'self'"),
    ("script-src", "'self'"),
    ("style-src", "'self'"),
    ("img-src", "'self' data:"),
    ("object-src", "'none'"),
    ("base-uri", "'none'"),
    ("frame-ancestors", "'none'"),
    ("form-action", "'self'"),
)


def new_nonce() -> str:
    """A fresh nonce for one response (128 bits, base64url: valid in a CSP nonce-source)."""
    return secrets.token_urlsafe(16)


def content_security_policy(*, style_nonce: str | None = None) -> str:
    """The policy, with ``style-src`` also allowing ``<style nonce=style_nonce>`` if given."""
    parts = []
    for name, value in DIRECTIVES:
        if name == "style-src" and style_nonce is not None:
            value = f"{value} 'nonce-{style_nonce}'"
        parts.append(f"{name} {value}")
    return "; ".join(parts)


def html_headers(*, style_nonce: str | None = None) -> dict[str, str]:
    """Headers for an HTML page: the policy, no MIME sniffing, no referrer, no caching.

    ``no-store``: a page that carries a nonce must not be served again from a cache.
    """
    return {
        "Content-Security-Policy": content_security_policy(style_nonce=style_nonce),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-store",
    }
