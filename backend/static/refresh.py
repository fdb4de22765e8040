"""Refresh the playground's vendored GraphiQL build from the npm registry.

``.venv/bin/python -m backend.static.refresh`` downloads each tarball pinned below, checks it
against its pinned integrity (npm's ``dist.integrity``: the SHA-512 of the tarball), takes the
files the page loads and the package's license, and rewrites ``graphiql/`` with them and
``graphiql/manifest.json`` (name, version, tarball, integrity, each file's sha256 and size).
Files are copied byte for byte, nothing is patched: graphiql's CSS embeds its fonts as
``data:`` URLs, so the page fetches nothing from elsewhere.

To bump a version:

1. change the version below and set its integrity to what
   ``npm view NAME@VERSION dist.integrity`` prints (a run whose pin is stale stops and shows
   the registry's value: check it before you paste it);
2. run this script (``--registry URL``, or ``npm_config_registry``, for a mirror);
3. run ``pytest tests/backend/test_playground.py tests/backend/test_playground_browser.py``:
   the page names its files through the manifest, and the browser test runs it in Chromium.

React 18.3.1 is the last React with UMD builds, which a page without a bundler needs; graphiql
3.8.3 and its explorer plugin 1.0.2 are the versions Strawberry's own page loads.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import os
import shutil
import sys
import tarfile
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TARGET = Path(__file__).parent / "graphiql"
MANIFEST = "manifest.json"
LICENSE = "LICENSE"
REGISTRY = "https://registry.npmjs.org"


@dataclass(frozen=True)
class Tarball:
    """One version of one package on the registry, pinned by the integrity of its tarball."""

    name: str
    version: str
    integrity: str

    @property
    def directory(self) -> str:
        """``react-18.3.1``: every URL carries the version, so browsers may cache for good."""
        return f"{self.name.lstrip('@').replace('/', '-')}-{self.version}"


@dataclass(frozen=True)
class Package:
    """A package the page loads: files of its tarball (in load order) and its license.

    ``licenses`` names where the license text comes from when the package ships none.
    """

    tarball: Tarball
    files: tuple[str, ...]
    licenses: tuple[tuple[Tarball, str], ...] = ()
    license_note: str = ""


# The versions, in one place.
REACT = Tarball(
    "react",
    "18.3.1",
    "sha512-wS+hAgJShR0KhEvPJArfuPVN1+Hz1t0Y6n5jLrGQbkb4urgPE/0Rve+1kMB1v/oWgHgm4WIcV+i7F2pTVj+2iQ==",
)
REACT_DOM = Tarball(
    "react-dom",
    "18.3.1",
    "sha512-5m4nQKp+rZRb09LNH59GM4BxTh9251/ylbKIbpe7TpGxfJ+9kv6BLkLBXIjjspbgbnIBNqlI23tRnTWT0snUIw==",
)
GRAPHIQL = Tarball(
    "graphiql",
    "3.8.3",
    "sha512-cuPDYtXVKV86Pu5PHBX642Odi/uVEE2y1Jxq5rGO/Qy1G2lRp7ZZ7a/T30RzxhuLSWo9zUbzq0P3U49//H0Ugw==",
)
EXPLORER = Tarball(
    "@graphiql/plugin-explorer",
    "1.0.2",
    "sha512-9j+kg2UjtLZD5EBmGjeWHkoVVxtbShYg2DzbUVebibnZYZM/iMBEF4vaccXJIAm5KaomIPLx0aoNs4LbODyc3Q==",
)
# Bundled into EXPLORER's UMD build; only its license is taken.
GRAPHIQL_EXPLORER = Tarball(
    "graphiql-explorer",
    "0.9.0",
    "sha512-fZC/wsuatqiQDO2otchxriFO0LaWIo/ovF/CQJ1yOudmY0P7pzDiP+l9CEHUiWbizk3e99x6DQG4XG1VxA+d6A==",
)

# In the order the page loads them: each script needs the globals of those before it.
PACKAGES = (
    Package(REACT, ("package/umd/react.production.min.js",)),
    Package(REACT_DOM, ("package/umd/react-dom.production.min.js",)),
    Package(GRAPHIQL, ("package/graphiql.min.css", "package/graphiql.min.js")),
    Package(
        EXPLORER,
        ("package/dist/style.css", "package/dist/index.umd.js"),
        licenses=((GRAPHIQL, "package/LICENSE"), (GRAPHIQL_EXPLORER, "package/LICENSE")),
        license_note=(
            "@graphiql/plugin-explorer is MIT-licensed (its package.json) but its tarball has"
            " no LICENSE file.\nBelow: the license of graphiql, from the same repository"
            " (graphql/graphiql), then that of graphiql-explorer, which its UMD build bundles."
        ),
    ),
)


def integrity(data: bytes, algorithm: str = "sha512") -> str:
    """The Subresource Integrity string of ``data``, as npm writes it."""
    digest = hashlib.new(algorithm, data).digest()
    return f"{algorithm}-{base64.b64encode(digest).decode()}"


def _fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=120) as response:
        data: bytes = response.read()
        return data


class Registry:
    """Downloads pinned tarballs (once each) and refuses any whose integrity differs."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        self.tarball_urls: dict[Tarball, str] = {}
        self._tarballs: dict[Tarball, bytes] = {}

    def tarball(self, pin: Tarball) -> bytes:
        if pin not in self._tarballs:
            name = urllib.parse.quote(pin.name, safe="@")
            dist = json.loads(_fetch(f"{self.url}/{name}/{pin.version}"))["dist"]
            if dist["integrity"] != pin.integrity:
                raise SystemExit(
                    f"{pin.name}@{pin.version}: the registry's integrity is"
                    f" {dist['integrity']!r}, the pin says {pin.integrity!r}."
                )
            data = _fetch(dist["tarball"])
            if integrity(data, pin.integrity.split("-", 1)[0]) != pin.integrity:
                raise SystemExit(f"{dist['tarball']}: the download does not match its integrity.")
            self.tarball_urls[pin] = dist["tarball"]
            self._tarballs[pin] = data
        return self._tarballs[pin]

    def member(self, pin: Tarball, path: str) -> bytes:
        with tarfile.open(fileobj=io.BytesIO(self.tarball(pin)), mode="r:gz") as archive:
            member = archive.extractfile(path)
            if member is None:
                raise SystemExit(f"{pin.name}@{pin.version} has no file {path!r}.")
            return member.read()


def _license(package: Package, registry: Registry) -> tuple[bytes, list[str]]:
    sources = package.licenses or ((package.tarball, "package/LICENSE"),)
    if not package.licenses:
        return registry.member(package.tarball, "package/LICENSE"), [_source(*sources[0])]
    parts = [package.license_note.encode() + b"\n"]
    for pin, path in sources:
        parts.append(f"\n==== {pin.name} {pin.version} ====\n\n".encode())
        parts.append(registry.member(pin, path))
    return b"".join(parts), [_source(pin, path) for pin, path in sources]


def _source(pin: Tarball, path: str) -> str:
    return f"{pin.name}@{pin.version}:{path}"


def _entry(name: str, data: bytes, sources: list[str]) -> dict[str, Any]:
    return {
        "name": name,
        "from": sources,
        "sha256": hashlib.sha256(data).hexdigest(),
        "size": len(data),
    }


def refresh(target: Path, registry: Registry) -> dict[str, Any]:
    """Write every package's files, licenses and the manifest into ``target`` (replaced)."""
    staging = target.with_name(target.name + ".new")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    manifest: dict[str, Any] = {
        "written_by": "backend/static/refresh.py: edit the pins there, never this file",
        "packages": [],
    }
    for package in PACKAGES:
        pin = package.tarball
        directory = staging / pin.directory
        directory.mkdir()
        files = []
        for path in package.files:
            data = registry.member(pin, path)
            name = path.rsplit("/", 1)[-1]
            (directory / name).write_bytes(data)
            files.append(_entry(name, data, [_source(pin, path)]))
        text, sources = _license(package, registry)
        (directory / LICENSE).write_bytes(text)
        manifest["packages"].append(
            {
                "name": pin.name,
                "version": pin.version,
                "integrity": pin.integrity,
                "tarball": registry.tarball_urls[pin],
                "directory": pin.directory,
                "files": files,
                "license": _entry(LICENSE, text, sources),
            }
        )
    (staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    return manifest


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--registry", default=os.environ.get("npm_config_registry") or REGISTRY, help="npm registry"
    )
    args = parser.parse_args(argv)
    manifest = refresh(TARGET, Registry(args.registry))
    for package in manifest["packages"]:
        size = sum(f["size"] for f in package["files"])
        print(f"{package['name']}@{package['version']}: {size:,} bytes in {package['directory']}/")
    print(f"wrote {TARGET / MANIFEST}", file=sys.stderr)


if __name__ == "__main__":
    main()
