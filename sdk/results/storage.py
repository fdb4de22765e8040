"""Results on storage the user owns, addressed by fsspec URLs.

The SDK writes a result to a location made from a template and reports only
``{location, serializer}`` to the backend. A location is a local path (the default, under
``$RUNVIEW_HOME/results``) or any URL fsspec knows: ``s3://``, ``gs://``, ``memory://``...
when the matching package (s3fs, gcsfs) is installed. Credentials and endpoints come from
the usual places (environment, fsspec configuration), never from the backend.

Every read checks first that the result may be loaded at all: pickle and cloudpickle only
from a trusted root (``sdk.results.trust``), json from anywhere.
"""

from __future__ import annotations

import asyncio
import os
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import fsspec
from fsspec.core import split_protocol, url_to_fs
from fsspec.implementations.local import LocalFileSystem

from sdk.exceptions import (
    InvalidInput,
    NoResultLocation,
    ResultError,
    ResultNotFound,
    ResultUnreadable,
)
from sdk.results.serializers import get_serializer
from sdk.results.trust import check_trusted, trust_storage
from sdk.settings import SDKSettings

TEMPLATE_FIELDS = ("flow_run_id", "task_run_id", "task_slug", "map_index", "flow_name")


@dataclass(frozen=True)
class ResultRef:
    """Where a result is stored and how: all the backend knows of it."""

    location: str
    serializer: str

    @classmethod
    def from_dict(cls, data: Any, *, run: str) -> ResultRef:
        """The reference in a serialized state's ``result``; ``run`` names the run for errors."""
        if not data:
            raise NoResultLocation(f"{run} finished without a result location.")
        if not isinstance(data, Mapping) or not {"location", "serializer"} <= set(data):
            raise ResultError(f"{run} has a malformed result reference {data!r}.")
        return cls(str(data["location"]), str(data["serializer"]))

    def to_dict(self) -> dict[str, str]:
        return {"location": self.location, "serializer": self.serializer}


class ResultStorage:
    """Where and how to store results.

    Args:
        template: An fsspec URL or path with ``{flow_run_id}``, ``{task_run_id}``,
            ``{task_slug}``, ``{map_index}`` or ``{flow_name}`` in it. Default:
            ``$RUNVIEW_HOME/results/{flow_run_id}/{task_run_id}``.
        serializer: ``pickle`` (default), ``cloudpickle`` or ``json``.

    Example::

        storage = ResultStorage("s3://my-bucket/{flow_name}/{flow_run_id}/{task_slug}")
        ref = storage.write([1, 2, 3], flow_run_id=..., task_run_id=..., task_slug="load-1")
    """

    def __init__(self, template: str | None = None, serializer: str = "pickle") -> None:
        self.template = template or f"{SDKSettings().results_dir}/{{flow_run_id}}/{{task_run_id}}"
        unknown = [
            name
            for _, name, _, _ in string.Formatter().parse(self.template)
            if name is not None and name not in TEMPLATE_FIELDS
        ]
        if unknown:
            raise InvalidInput(
                f"result location template {self.template!r} names {unknown!r}; it may use"
                f" {list(TEMPLATE_FIELDS)}."
            )
        self.serializer = get_serializer(serializer)
        trust_storage(self.template)  # what this process writes, it may read back

    def location(self, **fields: Any) -> str:
        return self.template.format(**{name: fields.get(name, "") for name in TEMPLATE_FIELDS})

    def write(self, value: Any, **fields: Any) -> ResultRef:
        """Serialize ``value`` to this storage's location for ``fields``; its reference."""
        location = self.location(**fields)
        data = self.serializer.dumps(value)
        try:
            if _is_local(location):
                _write_local(LocalFileSystem._strip_protocol(location), data)
            else:
                with fsspec.open(location, "wb", auto_mkdir=True) as file:
                    file.write(data)
        except Exception as error:
            raise ResultError(f"Cannot write a result to {location!r}: {error}") from error
        return ResultRef(location, self.serializer.name)


def read_result(ref: ResultRef) -> Any:
    """Load the value stored at ``ref``.

    Raises:
        InvalidInput: ``ref`` names no serializer the SDK has.
        ResultNotTrusted: It is pickle or cloudpickle, at a location under no trusted root
            (nothing is read).
        ResultNotFound: Nothing is stored at the location.
        ResultUnreadable: The stored bytes do not deserialize.
    """
    _check([ref])
    try:
        with fsspec.open(ref.location, "rb") as file:
            data = file.read()
    except Exception as error:
        data = error
    return _loaded(ref, data)


def read_results(refs: Sequence[ResultRef]) -> list[Any]:
    """Load many results, in the order given, with one fsspec call per filesystem.

    Local files are read in one loop; other filesystems get one ``cat_ranges`` call, in which
    an async filesystem (s3fs, gcsfs) fetches concurrently in batches. A thread and an
    ``fsspec.open`` per file cost 5 to 10 times more for a mapped parent's 10,000 small
    files (bench B4). Every reference is checked before any file is read (see
    ``read_result`` for the errors).
    """
    _check(refs)
    data: list[Any] = [None] * len(refs)
    groups: dict[str | None, list[int]] = {}
    for index, ref in enumerate(refs):
        if "::" in ref.location:  # a chained URL (simplecache::s3://...): on its own
            groups.setdefault(ref.location, []).append(index)
        else:
            groups.setdefault(split_protocol(ref.location)[0], []).append(index)
    for indexes in groups.values():
        try:
            fs, _ = url_to_fs(refs[indexes[0]].location)
            paths = [fs._strip_protocol(refs[i].location) for i in indexes]
            if isinstance(fs, LocalFileSystem):  # plain reads: fsspec's file objects cost 2x
                contents = [_read_local(path) for path in paths]
            else:
                contents = fs.cat_ranges(paths, None, None, on_error="return")
        except Exception as error:  # the filesystem itself is unavailable
            contents = [error] * len(indexes)
        for index, content in zip(indexes, contents, strict=True):
            data[index] = content
    return [_loaded(ref, content) for ref, content in zip(refs, data, strict=True)]


def _check(refs: Sequence[ResultRef]) -> None:
    """Refuse what may not be read, before anything is: an unknown serializer, or one that
    runs code at a location under no trusted root."""
    for ref in refs:
        get_serializer(ref.serializer)
    check_trusted(refs)


def _is_local(location: str) -> bool:
    """A plain path or a ``file://`` URL (not a chained one such as ``simplecache::``)."""
    return "::" not in location and split_protocol(location)[0] in (None, "file", "local")


def _write_local(path: str, data: bytes) -> None:
    """Plain writes, the directory made only when missing: an ``fsspec.open`` costs ~3x a
    small result's write (bench B3 writes 10,000 of them)."""
    try:
        file = open(path, "wb")
    except FileNotFoundError:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        file = open(path, "wb")
    with file:
        file.write(data)


def _read_local(path: str) -> bytes | Exception:
    try:
        with open(path, "rb") as file:
            return file.read()
    except Exception as error:
        return error


def _loaded(ref: ResultRef, data: bytes | Exception) -> Any:
    """The value in ``data`` read from ``ref``, or the error reading it, as an SDK error."""
    if isinstance(data, FileNotFoundError):
        raise ResultNotFound(f"No result is stored at {ref.location!r}.") from None
    if isinstance(data, Exception):
        raise ResultUnreadable(f"Cannot read the result at {ref.location!r}: {data}") from data
    serializer = get_serializer(ref.serializer)
    try:
        return serializer.loads(data)
    except Exception as error:
        raise ResultUnreadable(
            f"The result at {ref.location!r} cannot be read with the {ref.serializer!r}"
            f" serializer: {error}"
        ) from error


async def aread_results(refs: Sequence[ResultRef]) -> list[Any]:
    """``read_results`` without blocking the event loop."""
    return await asyncio.to_thread(read_results, refs)
