"""Vendor GraphiQL's browser files into the package, at the versions pinned below.

    python3 .ci/vendor_graphiql.py

Fetches each package with `npm pack` (the npm registry, as npm is configured) into a
temporary folder, checks the tarball against the registry's integrity hash, copies the
built files and the license into gql_scheduler/web/static/graphiql/, and writes
manifest.json: package, version, integrity, and the sha256 of every copied file.
tests/test_graphiql.py checks the served files against that manifest.

Why these builds: GraphiQL 3.x is the last line published as a single UMD bundle
(graphiql.min.js, with its CSS and fonts inlined) that runs from plain <script> tags;
GraphiQL 4+ ships ES modules only and would need a bundler here. It takes React 18, the
last React with UMD builds. graphql-ws is bundled inside graphiql.min.js but not exposed,
and the page builds its own websocket client (to send the API key in connection_init),
so its UMD build comes too, from the same major version GraphiQL bundles.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

TARGET = Path(__file__).resolve().parent.parent / "gql_scheduler" / "web" / "static" / "graphiql"

# package, version, {file in the tarball: name in the package}, license file in the tarball
PACKAGES: list[tuple[str, str, dict[str, str], str]] = [
    (
        "graphiql",
        "3.8.3",
        {"graphiql.min.js": "graphiql.min.js", "graphiql.min.css": "graphiql.min.css"},
        "LICENSE",
    ),
    ("react", "18.3.1", {"umd/react.production.min.js": "react.production.min.js"}, "LICENSE"),
    (
        "react-dom",
        "18.3.1",
        {"umd/react-dom.production.min.js": "react-dom.production.min.js"},
        "LICENSE",
    ),
    ("graphql-ws", "5.16.2", {"umd/graphql-ws.min.js": "graphql-ws.min.js"}, "LICENSE.md"),
]


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def fetch(name: str, version: str, workdir: Path) -> tuple[Path, str]:
    """The unpacked package folder and the registry's integrity string for its tarball."""
    spec = f"{name}@{version}"
    packed = subprocess.run(
        ["npm", "pack", "--json", spec], cwd=workdir, capture_output=True, text=True, check=True
    )
    (info,) = json.loads(packed.stdout)
    tarball = workdir / info["filename"]
    algorithm, expected = info["integrity"].split("-", 1)
    digest = base64.b64encode(hashlib.new(algorithm, tarball.read_bytes()).digest()).decode()
    if digest != expected:
        raise SystemExit(f"{spec}: the tarball does not match its integrity {info['integrity']}")
    unpacked = workdir / name
    with tarfile.open(tarball) as archive:
        archive.extractall(unpacked, filter="data")
    return unpacked / "package", info["integrity"]


def vendor() -> None:
    licenses = TARGET / "licenses"
    licenses.mkdir(parents=True, exist_ok=True)
    manifest: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory() as temporary:
        for name, version, files, license_file in PACKAGES:
            package, integrity = fetch(name, version, Path(temporary))
            license_name = f"licenses/{name}.{Path(license_file).name}"
            shutil.copyfile(package / license_file, TARGET / license_name)
            copied = {}
            for source, target in files.items():
                shutil.copyfile(package / source, TARGET / target)
                copied[target] = {"from": source, "sha256": sha256_of(TARGET / target)}
            metadata = json.loads((package / "package.json").read_text(encoding="utf-8"))
            manifest.append(
                {
                    "name": name,
                    "version": version,
                    "source": f"npm {name}@{version}",
                    "integrity": integrity,
                    "license": metadata["license"],
                    "license_file": license_name,
                    "files": copied,
                }
            )
    text = json.dumps({"packages": manifest}, indent=2) + "\n"
    (TARGET / "manifest.json").write_text(text, encoding="utf-8")


if __name__ == "__main__":
    vendor()
