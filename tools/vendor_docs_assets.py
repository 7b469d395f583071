"""Vendor Swagger UI and ReDoc from npm into ``functions/api/static/docs/`` (run by hand).

    python tools/vendor_docs_assets.py    # fetch the pinned versions, rewrite the manifest

The docs pages load these files from the app itself, so that /docs and /redoc work without
internet access and under the strict Content-Security-Policy (functions/api/security_headers.py).
Each package is fetched with ``npm pack`` (the registry's tarball, checked against the pinned
integrity hash), and only the files the pages load are kept, with the licence texts: the package's
own and the bundled third-party notices (``*.LICENSE.txt``). ``PATCHES`` lists the few byte-exact
edits made to a vendored file, each with its reason. ``vendor.json`` records the versions, the
SHA-256 of every kept file (and of a patched file's upstream text); tests/api/test_docs.py checks
the files against it.
To upgrade: change a version and its integrity here (``npm view <name>@<version> dist.integrity``),
run this script, run the browser test (tests/browser/).
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET = ROOT / "functions" / "api" / "static" / "docs"
MANIFEST = TARGET / "vendor.json"

REDOC_WORKER = "d87bcbdbea8f8f5aa26f.worker.js"
# name -> (version, npm integrity, folder under TARGET, {file in the package: file in folder})
PACKAGES: dict[str, tuple[str, str, str, dict[str, str]]] = {
    "swagger-ui-dist": (
        "5.35.0",
        "sha512-U06rpMtW9V3XPGOBeamTUSr0Z09jMX4IJuANpE/EZbAhw0G8CgwrzU4YmXkn/h0wCDNsXdGarTNNHC3sU8yVUQ==",
        "swagger-ui",
        {
            "swagger-ui-bundle.js": "swagger-ui-bundle.js",
            "swagger-ui-bundle.js.LICENSE.txt": "swagger-ui-bundle.js.LICENSE.txt",
            "swagger-ui.css": "swagger-ui.css",
            "LICENSE": "LICENSE",
            "NOTICE": "NOTICE",
        },
    ),
    "redoc": (
        "2.5.4",
        "sha512-M6jWhG1qoBnH6TFmzJnstyCZ87HmOY/UzDm78mHiYihEdlV/YcS9ogOo1NlElnJMeLsyxHFe2yFc4sNjHTrABQ==",
        "redoc",
        {
            "bundles/redoc.standalone.js": "redoc.standalone.js",
            "bundles/redoc.standalone.js.LICENSE.txt": "redoc.standalone.js.LICENSE.txt",
            # The search worker's code is inlined in the standalone bundle; its notices are here.
            f"bundles/{REDOC_WORKER}.LICENSE.txt": f"{REDOC_WORKER}.LICENSE.txt",
            "LICENSE": "LICENSE",
        },
    ),
}


#: Byte-exact edits of vendored files, each applied exactly once, recorded in vendor.json.
PATCHES: dict[str, list[tuple[bytes, bytes, str]]] = {
    "redoc/redoc.standalone.js": [
        (
            b'src:"https://cdn.redoc.ly/redoc/logo-mini.svg"',
            b'src:"data:,"',
            # The side menu's "API docs by Redocly" link shows a logo from Redocly's CDN, with no
            # option to turn it off. An empty data: image fails to decode and ReDoc's onError
            # hides it: the link stays, the request to another origin goes.
            "the attribution logo loaded from cdn.redoc.ly: an empty data: image, hidden on error",
        )
    ],
}


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _integrity(path: Path) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(path.read_bytes()).digest()).decode()


def unpack(
    name: str, version: str, integrity: str, destination: Path, files: dict[str, str]
) -> dict[str, str]:
    """Fetch ``name@version`` with ``npm pack``, check its integrity and write ``files`` (package
    path -> name) into a fresh ``destination``; return each written file's SHA-256 by name."""
    with tempfile.TemporaryDirectory() as work:
        out = subprocess.run(
            ["npm", "pack", f"{name}@{version}", "--json", "--pack-destination", work],
            check=True, capture_output=True, text=True, cwd=work,
        )  # fmt: skip
        tarball = Path(work) / json.loads(out.stdout)[0]["filename"]
        if _integrity(tarball) != integrity:
            raise SystemExit(f"{name}@{version}: the tarball does not match the pinned integrity")
        shutil.rmtree(destination, ignore_errors=True)
        destination.mkdir(parents=True)
        with tarfile.open(tarball) as archive:
            for source, target in files.items():
                member = archive.extractfile(f"package/{source}")
                if member is None:
                    raise SystemExit(f"{name}@{version}: {source} is not a file")
                (destination / target).write_bytes(member.read())
    return {target: _sha256(destination / target) for target in sorted(files.values())}


def vendor(
    name: str, version: str, integrity: str, folder: str, files: dict[str, str]
) -> dict[str, object]:
    destination = TARGET / folder
    hashes = unpack(name, version, integrity, destination, files)
    upstream = {f"{folder}/{t}": digest for t, digest in hashes.items()}
    patched = {}
    for relative, edits in PATCHES.items():
        if not relative.startswith(f"{folder}/"):
            continue
        path = TARGET / relative
        data = path.read_bytes()
        for old, new, _ in edits:
            if data.count(old) != 1:
                raise SystemExit(f"{relative}: the patched text is not found exactly once")
            data = data.replace(old, new)
        path.write_bytes(data)
        patched[relative] = {
            "upstream_sha256": upstream[relative],
            "patches": [e[2] for e in edits],
        }
    return {
        "version": version,
        "integrity": integrity,
        "files": {f"{folder}/{t}": _sha256(destination / t) for t in hashes},
        "patched": patched,
    }


def main() -> None:
    manifest = {name: vendor(name, *spec) for name, spec in PACKAGES.items()}
    MANIFEST.write_text(json.dumps(manifest, indent=2) + "\n")
    sys.stdout.write(f"wrote {MANIFEST.relative_to(ROOT)}\n")


if __name__ == "__main__":
    main()
