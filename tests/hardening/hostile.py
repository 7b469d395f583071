"""A corpus of hostile strings for the traversal and SSRF suite (tests/hardening/test_traversal.py).

Each entry has a stable id (used in counts and failure messages) and the string itself. The kinds:
path traversal (plain, percent-encoded once and twice, overlong UTF-8, Windows and UNC forms),
absolute paths, look-alike Unicode dots and slashes, control characters (NUL, CR LF, tab, DEL,
RTL override, BOM, a lone surrogate), URLs that would make a server fetch something (``file://``,
the cloud metadata addresses, ``s3://`` URIs of another bucket or escaping our prefix), shell, SQL,
template and JNDI injection, SQL ``LIKE`` wildcards, URL delimiters (``;``, ``#``, ``?``, ``&``)
and sizes far beyond every limit (10,000 characters).

A few entries are valid names on purpose (``_``, ``chur_``, ``CON``, ``__proto__``): a wildcard
or a reserved word must be treated as the plain name it is, never match something else.

``suffixed`` builds the second family: a field's *valid* value with something appended (a
trailing newline slips past a ``re.match(r"^...$")`` check; ``/../x`` or ``%00`` after a good
prefix slips past a ``startswith`` check).
"""

from __future__ import annotations

from typing import NamedTuple

LONG = 10_000


class Hostile(NamedTuple):
    id: str
    value: str


CORPUS: tuple[Hostile, ...] = (
    # -- traversal ---------------------------------------------------------------------------
    Hostile("dotdot-slash", "../"),
    Hostile("dotdot-etc-passwd", "../../../../etc/passwd"),
    Hostile("dotdot", ".."),
    Hostile("dot", "."),
    Hostile("dotdot-pct2f", "..%2f"),
    Hostile("dotdot-pct2F-passwd", "..%2F..%2F..%2Fetc%2Fpasswd"),
    Hostile("pct-dotdot-slash", "%2e%2e%2f"),
    Hostile("pct-dots-slash", "%2e%2e/"),
    Hostile("double-pct", "%252e%252e%252f"),
    Hostile("dotdot-double-pct-slash", "..%252f"),
    Hostile("overlong-c0af", "..%c0%af"),
    Hostile("overlong-c19c", "..%c1%9c"),
    Hostile("dots-doubled", "....//"),
    Hostile("dot-dotdot-dot", "..././"),
    Hostile("dotdot-backslash", "..\\"),
    Hostile("dotdot-backslash-win", "..\\..\\windows\\win.ini"),
    Hostile("dotdot-semicolon", "..;/"),
    Hostile("inner-dotdot", "runs/../../x"),
    Hostile("name-dotdot-name", "a..b"),
    Hostile("slash-in-name", "a/b"),
    # -- absolute paths ----------------------------------------------------------------------
    Hostile("abs-etc-passwd", "/etc/passwd"),
    Hostile("root", "/"),
    Hostile("double-slash", "//"),
    Hostile("windows-drive", "C:\\Windows\\win.ini"),
    Hostile("unc-share", "\\\\server\\share"),
    Hostile("home-ssh", "~/.ssh/id_rsa"),
    Hostile("proc-environ", "/proc/self/environ"),
    # -- Unicode look-alikes -----------------------------------------------------------------
    Hostile("fullwidth-dotdot-slash", "\uff0e\uff0e\uff0f"),
    Hostile("fullwidth-dotdot", "\uff0e\uff0e"),
    Hostile("fullwidth-backslash", "\uff0e\uff0e\uff3c"),
    Hostile("one-dot-leader", "\u2024\u2024/"),
    Hostile("division-slash", "..\u2215etc\u2215passwd"),
    Hostile("pct-u-encoding", "%u002e%u002e%u2215"),
    Hostile("combining-dot", "a\u0307b"),
    # -- control characters ------------------------------------------------------------------
    Hostile("nul-inside", "a\x00b"),
    Hostile("nul-only", "\x00"),
    Hostile("nul-after-dotdot", "../\x00.json"),
    Hostile("crlf-header", "a\r\nX-Injected: 1"),
    Hostile("newline", "a\nb"),
    Hostile("tab", "a\tb"),
    Hostile("del", "a\x7fb"),
    Hostile("rtl-override", "\u202eevil.json"),
    Hostile("bom", "\ufeffchurn"),
    Hostile("zero-width-space", "chu\u200brn"),
    Hostile("lone-surrogate", "a\ud800b"),
    Hostile("emoji", "\U0001f600"),
    # -- URLs a server must never fetch ------------------------------------------------------
    Hostile("file-etc-passwd", "file:///etc/passwd"),
    Hostile("file-localhost", "file://localhost/etc/passwd"),
    Hostile("imds-v4", "http://169.254.169.254/latest/meta-data/"),
    Hostile(
        "imds-credentials", "http://169.254.169.254/latest/meta-data/iam/security-credentials/"
    ),
    Hostile("imds-v6", "http://[fd00:ec2::254]/latest/meta-data/"),
    Hostile("ecs-credentials", "http://169.254.170.2/v2/credentials"),
    Hostile("gcp-metadata", "http://metadata.google.internal/computeMetadata/v1/"),
    Hostile("localhost-port", "http://127.0.0.1:22/"),
    Hostile("decimal-ip", "http://2852039166/"),
    Hostile("scheme-relative", "//evil.example/x"),
    Hostile("userinfo-trick", "https://bucket@169.254.169.254/"),
    Hostile("s3-other-bucket", "s3://other-bucket/key"),
    Hostile("s3-other-bucket-runs", "s3://other-bucket/artifacts/runs/r/model/model.json"),
    Hostile("s3-escape", "s3://bucket/../x"),
    Hostile("gopher", "gopher://127.0.0.1:6379/_INFO"),
    Hostile("dict", "dict://127.0.0.1:11211/stats"),
    Hostile("jar", "jar:file:///tmp/x.jar!/"),
    Hostile("unc-imds", "\\\\169.254.169.254\\x"),
    # -- injection and delimiters ------------------------------------------------------------
    Hostile("semicolon-ls", ";ls"),
    Hostile("semicolon-rm", "a;rm -rf /"),
    Hostile("pipe-id", "|id"),
    Hostile("backtick-id", "`id`"),
    Hostile("dollar-paren-id", "$(id)"),
    Hostile("hash", "#"),
    Hostile("hash-inside", "a#b"),
    Hostile("query", "?x=y"),
    Hostile("ampersand", "a&b=c"),
    Hostile("jndi", "${jndi:ldap://169.254.169.254/x}"),
    Hostile("template", "{{7*7}}"),
    Hostile("template-dollar", "${7*7}"),
    Hostile("sql-drop", "'; DROP TABLE runs;--"),
    Hostile("sql-or", "' OR '1'='1"),
    Hostile("html", "<script>alert(1)</script>"),
    Hostile("json-breakout", '","admin":true,"x":"'),
    # -- SQL LIKE and glob wildcards (a few are valid names) ----------------------------------
    Hostile("like-percent", "%"),
    Hostile("like-percent-inside", "c%n"),
    Hostile("like-underscore", "_"),
    Hostile("like-underscore-suffix", "chur_"),
    Hostile("glob-star", "*"),
    Hostile("glob-class", "[a-z]*"),
    Hostile("reserved-con", "CON"),
    Hostile("proto", "__proto__"),
    # -- emptiness and size ------------------------------------------------------------------
    Hostile("empty", ""),
    Hostile("space", " "),
    Hostile("padded", " churn "),
    Hostile("just-over-128", "a" * 129),
    Hostile("long-10k", "x" * LONG),
    Hostile("long-10k-dotdot", "../" * (LONG // 3 + 1)),
    Hostile("long-10k-pct", "%2e" * (LONG // 3 + 1)),
    Hostile("long-10k-unicode", "\uff0e" * LONG),
)

#: Appended to a field's valid value (see the module docstring).
SUFFIXES: tuple[Hostile, ...] = (
    Hostile("valid+newline", "\n"),
    Hostile("valid+crlf", "\r\n"),
    Hostile("valid+nul", "\x00"),
    Hostile("valid+space", " "),
    Hostile("valid+dotdot", "/../x"),
    Hostile("valid+pct-dotdot", "%2f..%2fx"),
)


def suffixed(valid: str) -> list[Hostile]:
    """The suffix family for a field whose valid value is ``valid``."""
    return [Hostile(suffix.id, valid + suffix.value) for suffix in SUFFIXES]


def for_field(valid: str) -> list[Hostile]:
    """Every hostile string sent to one field: the corpus, then the field's suffixed value."""
    return [*CORPUS, *suffixed(valid)]


assert len({entry.id for entry in CORPUS}) == len(CORPUS), "corpus ids must be unique"
assert len({entry.value for entry in CORPUS}) == len(CORPUS), "corpus strings must be unique"
