"""A small store for the UI's tests: a sweep (parent + children), hostile text, every artifact kind.

Shared by the TestClient tests (tests/ui/) and the browser tests (tests/browser/test_ui.py).
Every payload sets ``window.__xss`` if a page ever runs it; the pages must show it as text.
"""

from __future__ import annotations

import hashlib
import json
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from tracking import ExperimentLogger, ModelRegistry

EXPERIMENT = "ui_demo"
XSS = (
    "<script>window.__xss=1</script>",
    '<img src=x onerror="window.__xss=1">',
    '"><svg onload=window.__xss=1>',
    '\'><iframe srcdoc="<script>parent.__xss=1</script>"></iframe>',
    "javascript:window.__xss=1",
    "</td></tr></table><script>window.__xss=1</script>",
)
HTML_ARTIFACT = b"<!DOCTYPE html><html><body><script>window.__xss=1</script>rendered</body></html>"
SVG_ARTIFACT = (
    b'<svg xmlns="http://www.w3.org/2000/svg" onload="window.__xss=1">'
    b"<script>window.__xss=1</script></svg>"
)
KEYS = {
    "admin": ("ui-admin-key-0123456789", ["predict", "read", "admin"]),
    "reader": ("ui-reader-key-0123456789", ["read"]),
    "scorer": ("ui-scorer-key-0123456789", ["predict"]),
}
HISTORY_STEPS = 3000


def key_config() -> str:
    return json.dumps(
        [
            {"name": name, "scopes": scopes, "sha256": hashlib.sha256(key.encode()).hexdigest()}
            for name, (key, scopes) in KEYS.items()
        ]
    )


def png_bytes() -> bytes:
    """A valid 1x1 PNG."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00\xff\x00\x00")
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


@dataclass
class Seeded:
    parent: str
    children: list[str]
    hostile: str
    plain: list[str] = field(default_factory=list)


def seed(logger: ExperimentLogger, registry: ModelRegistry, folder: Path) -> Seeded:
    """The UI's fixture runs, in ``EXPERIMENT``; the hostile run's reason goes on model churn."""
    folder.mkdir(parents=True, exist_ok=True)
    with logger.start_run(EXPERIMENT, run_name="sweep") as parent:
        parent.log_params({"grid": "depth x lr"})
        parent.log_metric("best_auc", 0.9)
    children = []
    for index, (depth, lr) in enumerate(((3, 0.1), (5, 0.1), (5, 0.3))):
        with logger.start_run(
            EXPERIMENT, run_name=f"trial-{index}", parent_run_id=parent.run_id
        ) as child:
            child.log_params({"max_depth": depth, "learning_rate": lr})
            child.set_tags({"team": "ds" if index else "ml"})
            for step in range(0, 50):
                child.log_metric("loss", 1.0 / (step + 1 + index), step=step)
            child.log_metric("auc", 0.8 + index / 100)
        children.append(child.run_id)
    dataset = folder / f"{XSS[1]}.csv"
    dataset.write_text("a,b\n1,2\n")
    files = {
        "page_html": ("page.html", HTML_ARTIFACT),
        "drawing_svg": ("drawing.svg", SVG_ARTIFACT),
        "image_png": ("image.png", png_bytes()),
        "fake_png": ("fake.png", HTML_ARTIFACT),  # a .png name on HTML bytes: downloaded
        "report_json": ("report.json", json.dumps({"note": XSS[0]}).encode()),
    }
    with logger.start_run(EXPERIMENT, run_name="hostile") as hostile:
        hostile.log_params({f"p{i}": payload for i, payload in enumerate(XSS)})
        hostile.set_tags({f"t{i}": payload for i, payload in enumerate(XSS)})
        hostile.log_dataset("evil", dataset)
        for step in range(HISTORY_STEPS):
            hostile.log_metric(
                "noisy", (step % 100) / 100 + (5.0 if step == 1234 else 0.0), step=step
            )
        for name, (filename, data) in files.items():
            path = folder / filename
            path.write_bytes(data)
            hostile.log_artifact(path, name=name)
    return Seeded(parent.run_id, children, hostile.run_id)
