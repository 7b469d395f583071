"""Vendor htmx and uPlot from npm into ``functions/api/ui/static/vendor/`` (run by hand).

    python tools/vendor_ui_assets.py    # fetch the pinned versions, rewrite the manifest

The web UI (functions/api/ui/) loads these files from the app itself: no CDN, so the pages work
offline and under the strict Content-Security-Policy. Like tools/vendor_docs_assets.py, each
package comes from ``npm pack`` checked against its pinned integrity, only the minified files the
pages load are kept, with the package's licence, and ``vendor.json`` records every file's
SHA-256 (tests/ui/test_assets.py checks them).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from vendor_docs_assets import unpack  # the same fetch, check and unpack (tools/ is on sys.path)

ROOT = Path(__file__).resolve().parents[1]
TARGET = ROOT / "functions" / "api" / "ui" / "static" / "vendor"
MANIFEST = TARGET / "vendor.json"

# name -> (version, npm integrity, folder under TARGET, {file in the package: file in folder})
PACKAGES: dict[str, tuple[str, str, str, dict[str, str]]] = {
    "htmx.org": (
        "2.0.11",
        "sha512-Thx/WtpeOQqSrqBCw/A1cwGJGg4UrVa3+sW0GmrM3p4gJgO89ecH4qtbnyzDDWFvBTqjnIMCgELTNt636dtamA==",
        "htmx",
        {"dist/htmx.min.js": "htmx.min.js", "LICENSE": "LICENSE"},
    ),
    "uplot": (
        "1.6.32",
        "sha512-KIMVnG68zvu5XXUbC4LQEPnhwOxBuLyW1AHtpm6IKTXImkbLgkMy+jabjLgSLMasNuGGzQm/ep3tOkyTxpiQIw==",
        "uplot",
        {
            "dist/uPlot.iife.min.js": "uPlot.iife.min.js",
            "dist/uPlot.min.css": "uPlot.min.css",
            "LICENSE": "LICENSE",
        },
    ),
}


def vendor(
    name: str, version: str, integrity: str, folder: str, files: dict[str, str]
) -> dict[str, object]:
    hashes = unpack(name, version, integrity, TARGET / folder, files)
    return {
        "version": version,
        "integrity": integrity,
        "files": {f"{folder}/{t}": digest for t, digest in hashes.items()},
    }


def main() -> None:
    manifest = {name: vendor(name, *spec) for name, spec in PACKAGES.items()}
    MANIFEST.write_text(json.dumps(manifest, indent=2) + "\n")
    sys.stdout.write(f"wrote {MANIFEST.relative_to(ROOT)}\n")


if __name__ == "__main__":
    main()
