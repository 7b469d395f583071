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
  carry it, instead of ``'unsafe-inline'``; the two stylesheets its bundle injects as it loads
  (before the nonce is known) are allowed by their SHA-256. Scripts get neither: they are files.
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


def content_security_policy(
    *, style_nonce: str | None = None, style_hashes: tuple[str, ...] = ()
) -> str:
    """The policy; ``style-src`` also allows ``<style>`` with ``style_nonce`` or these hashes.

    ``style_hashes`` are ``sha256-<base64>`` digests of exact stylesheet texts that a vendored
    script injects before any nonce can reach it (see functions/api/docs.py).
    """
    parts = []
    for name, value in DIRECTIVES:
        if name == "style-src":
            extra = [f"'{digest}'" for digest in style_hashes]
            if style_nonce is not None:
                extra.append(f"'nonce-{style_nonce}'")
            value = " ".join([value, *extra])
        parts.append(f"{name} {value}")
    return "; ".join(parts)


def html_headers(
    *, style_nonce: str | None = None, style_hashes: tuple[str, ...] = ()
) -> dict[str, str]:
    """Headers for an HTML page: the policy, no MIME sniffing, no referrer, no caching.

    ``no-store``: a page that carries a nonce must not be served again from a cache.
    """
    policy = content_security_policy(style_nonce=style_nonce, style_hashes=style_hashes)
    return {
        "Content-Security-Policy": policy,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-store",
    }
