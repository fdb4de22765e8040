"""Which results this process loads: trusted roots for the serializers that run code.

A run's result reference is data: whoever can propose a state chooses its location, and
loading pickle or cloudpickle runs code from the stored bytes. So those load only from
locations under a root the reader trusts; json, which runs nothing, loads from anywhere.
The trusted roots are

- ``RUNVIEW_TRUSTED_RESULT_ROOTS`` (unset: ``$RUNVIEW_HOME/results``, where the default
  ``ResultStorage`` writes), read at every load;
- the root of every ``ResultStorage`` made in this process, its template up to the last
  ``/`` before the first field: what this process's flows write, it reads back.

Roots and locations are compared by what they name, not as strings. A location is a chain
of links (``simplecache::s3://bucket/x`` has two), each a protocol and a path; it is under
a root whose links before the last are its own and whose last link has its protocol and a
path that is a prefix of its path segment by segment: ``/a/results-evil`` is not under
``/a/results``. Local paths, ``file://`` and ``local://`` URLs are one protocol, their
paths made absolute and ``..`` resolved as the operating system does. Other filesystems
(s3, gs, memory, http...) keep their paths as written, so a location there with a ``.`` or
``..`` segment (percent-encoded or not) is under no root: object stores take it literally,
web servers resolve it, and either way it is not worth the doubt. Protocols are never
aliases of each other (``http`` is not ``https``, ``s3a`` is not ``s3``).
"""

from __future__ import annotations

import posixpath
import string
import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING, NamedTuple
from urllib.parse import unquote

from fsspec.core import split_protocol
from fsspec.implementations.local import LocalFileSystem

from sdk.exceptions import ResultNotTrusted
from sdk.settings import SDKSettings

if TYPE_CHECKING:
    from sdk.results.storage import ResultRef

# Serializers whose loading runs no code from the bytes. Any other, including one added
# later, loads only from a trusted root.
INERT_SERIALIZERS = frozenset({"json"})

SETTING = "RUNVIEW_TRUSTED_RESULT_ROOTS"

_LOCAL = frozenset({None, "file", "local"})


class Place(NamedTuple):
    """A location or a root as trust compares it; see the module docstring."""

    chain: tuple[tuple[str, str], ...]  # the links before the last, as (protocol, path)
    protocol: str
    path: str  # segments joined by "/", without a leading or trailing one
    dotted: bool = False  # a remote path with dot segments: under no root

    @classmethod
    def of(cls, location: str) -> Place:
        if location.startswith("/") and "::" not in location:  # the common case, made cheap
            return cls((), "file", posixpath.normpath(location).strip("/"))
        parts = location.split("::")
        links = [_link(part, chained=len(parts) > 1) for part in parts]
        *chain, (protocol, path, dotted) = links
        return cls(
            tuple((p, q) for p, q, _ in chain),
            protocol,
            path,
            dotted or any(d for _, _, d in chain),
        )

    @classmethod
    def root(cls, location: str) -> Place:
        """A root as configured: a remote one's dot segments resolved as written."""
        place = cls.of(location)
        if not place.dotted:
            return place
        resolved = posixpath.normpath("/" + place.path).strip("/")
        return place._replace(path=resolved, dotted=False)


def _link(part: str, *, chained: bool) -> tuple[str, str, bool]:
    """One link of a location: its protocol, its path, and whether a remote path has dot
    segments."""
    if chained and "://" not in part:  # a bare protocol, as fsspec reads a chain
        return part.lower(), "", False
    protocol, path = split_protocol(part)
    if protocol in _LOCAL:
        # Where fsspec opens it (absolute, ``~`` expanded), with ``..`` resolved.
        return "file", posixpath.normpath(LocalFileSystem._strip_protocol(part)).strip("/"), False
    dotted = any(segment in (".", "..") for segment in unquote(path).split("/"))
    return protocol.lower(), path.strip("/"), dotted


def template_root(template: str) -> str:
    """The root of what a result location template can name: its text up to the last ``/``
    before its first field (``s3://b/{flow_name}/x`` → ``s3://b/``); without fields, the one
    location it names."""
    prefix = ""
    for literal, field_name, _, _ in string.Formatter().parse(template):
        prefix += literal
        if field_name is not None:
            break
    else:
        return prefix
    chain, separator, last = prefix.rpartition("::")
    protocol_end = last.find("://") + 3 if "://" in last else 0
    cut = last.rfind("/") + 1
    return chain + separator + last[: max(cut, protocol_end)]


class TrustedRoots:
    """The roots results may be loaded from, indexed for a batch's many checks.

    Example::

        roots = TrustedRoots(["/data/results", "s3://bucket/runs/"])
        roots.cover("s3://bucket/runs/etl/1")  # True
        roots.cover("/data/results-old/1")  # False
    """

    def __init__(self, roots: Iterable[str]) -> None:
        self.roots = list(dict.fromkeys(roots))
        # Per (chain, protocol): each root's path and a "/", so one startswith decides.
        self._prefixes: dict[tuple[tuple[tuple[str, str], ...], str], tuple[str, ...]] = {}
        for root in self.roots:
            place = Place.root(root)
            key = (place.chain, place.protocol)
            prefix = place.path + "/" if place.path else ""
            self._prefixes[key] = (*self._prefixes.get(key, ()), prefix)
        self._local = self._prefixes.get(((), "file"), ())

    @classmethod
    def now(cls) -> TrustedRoots:
        """What this process trusts now: the setting's roots, then its result storages'."""
        return cls([*SDKSettings().result_roots, *_storage_roots])

    def cover(self, location: str) -> bool:
        """Whether ``location`` is one of the roots or under one."""
        if location.startswith("/") and "::" not in location:  # the common case, made cheap
            return (posixpath.normpath(location).strip("/") + "/").startswith(self._local)
        place = Place.of(location)
        prefixes = self._prefixes.get((place.chain, place.protocol), ())
        return not place.dotted and (place.path + "/").startswith(prefixes)


_lock = threading.Lock()
_storage_templates: set[str] = set()
_storage_roots: tuple[str, ...] = ()


def trust_storage(template: str) -> None:
    """Trust the root of a result storage this process writes to (``ResultStorage`` calls
    this for every template it is given)."""
    global _storage_roots
    if template in _storage_templates:  # a task's storage is made once per call: stay cheap
        return
    root = template_root(template)
    place = Place.root(root)
    if not place.chain and place.protocol == "file":  # relative to this directory, now
        root = "/" + place.path
    with _lock:
        _storage_templates.add(template)
        _storage_roots = (*_storage_roots, root)


def check_trusted(refs: Iterable[ResultRef]) -> None:
    """Refuse, before anything is read, a result whose serializer runs code and whose
    location is under no trusted root.

    Raises:
        ResultNotTrusted: Naming the location, the serializer and the setting to change.
    """
    roots: TrustedRoots | None = None  # read once, and only when needed
    for ref in refs:
        if ref.serializer in INERT_SERIALIZERS:
            continue
        if roots is None:
            roots = TrustedRoots.now()
        if not roots.cover(ref.location):
            raise ResultNotTrusted(
                f"The result at {ref.location!r} is serialized with {ref.serializer!r}, which"
                " runs code as it loads, and its location is under no trusted result root, so"
                f" it was not read. Trusted now: {_listed(roots.roots)}. If you trust where"
                f" it is, add its root to {SETTING}.",
                ref.location,
                ref.serializer,
            )


def _listed(roots: list[str], most: int = 5) -> str:
    """The roots for a message: a long-lived process may have made many storages."""
    if not roots:
        return "none"
    shown = ", ".join(repr(root) for root in roots[:most])
    return shown if len(roots) <= most else f"{shown} and {len(roots) - most} more"
