"""Reading workspace files with line numbers, and writing them atomically.

Every problem we report must point at a file and a line, so YAML is loaded through its node tree and
each key path is mapped to the line it starts on. Dates stay strings (as ODCS asks); the pydantic
models parse them.
"""

from __future__ import annotations

import gc
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from meshpilot.errors import Problem

LinePath = tuple[str | int, ...]


# libyaml's parser when PyYAML was built with it (the wheels are): the pure-Python one spends seconds on
# a thousand product files. Both give the same nodes, with the line marks validation errors cite.
_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_SAFE_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


class _Loader(_SAFE_LOADER):
    """SafeLoader without the timestamp resolver: dates remain the strings the author wrote."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


class LocatedDocument:
    """A parsed document plus where each of its parts starts, so validation errors can cite lines."""

    def __init__(self, source: str, data: Any, lines: dict[LinePath, int] | None = None, node: yaml.Node | None = None,
                 text: str | None = None):
        self.source = source
        self.data = data
        self._lines = lines
        self._node = node
        self._text = text  # YAML whose data was given already parsed: composed only if a line is needed

    @property
    def lines(self) -> dict[LinePath, int]:
        # Mapped from the node tree only when a problem needs a line: most files have none, and mapping
        # every key of a thousand product files costs seconds.
        if self._lines is None:
            self._lines = {}
            if self._node is None and self._text is not None:
                loader = _Loader(self._text)
                try:
                    self._node = loader.get_single_node()
                finally:
                    loader.dispose()
            if self._node is not None:
                _record_lines(self._node, (), self._lines)
        return self._lines

    def line_of(self, path: Iterable[str | int]) -> int | None:
        """The line of the deepest part of `path` that exists in the document."""
        path = tuple(path)
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return self.lines.get((), None)

    def problem(self, path: Iterable[str | int], message: str) -> Problem:
        return Problem(self.source, message, self.line_of(path))

    def validate(self, model: type[BaseModel], path: LinePath = (), data: Any = None) -> tuple[Any, list[Problem]]:
        """Validate `data` (default: the whole document) against `model`; problems carry lines."""
        try:
            return model.model_validate(self.data if data is None else data), []
        except ValidationError as exc:
            return None, [self.problem(path + tuple(err["loc"]), _describe(err)) for err in exc.errors()]


def _describe(err: dict[str, Any]) -> str:
    field = ".".join(str(p) for p in err["loc"]) or "document"
    if err["type"] == "extra_forbidden":
        return f"unknown field '{err['loc'][-1]}' (check its spelling)"
    if err["type"] == "missing":
        return f"missing required field '{field}'"
    given = err.get("input")
    shown = f" (got {given!r})" if isinstance(given, str | int | float | bool) else ""
    return f"{field}: {err['msg']}{shown}"


@contextmanager
def collection_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off for a bulk read or build. Loading a large catalog creates
    millions of objects that live on, and the collector rescans them all at every generation threshold:
    half the time of loading 10k datasets. Nothing read here forms cycles worth collecting early."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _record_lines(node: yaml.Node, path: LinePath, lines: dict[LinePath, int]) -> None:
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key_path = (*path, key_node.value)
            lines[key_path] = key_node.start_mark.line + 1
            _record_lines(value_node, key_path, lines)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _record_lines(item, (*path, index), lines)


def parse_yaml(text: str, source: str) -> tuple[LocatedDocument | None, list[Problem]]:
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, [Problem(source, "the file is empty", 1)]
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        return None, [Problem(source, f"invalid YAML: {exc.problem or exc.context}", line)]
    except yaml.YAMLError as exc:
        return None, [Problem(source, f"invalid YAML: {exc}")]
    finally:
        loader.dispose()
    return LocatedDocument(source, data, node=node), []


def load_yaml(path: Path, source: str | None = None) -> tuple[LocatedDocument | None, list[Problem]]:
    source = source or str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        return None, [Problem(source, "not UTF-8 text")]
    except OSError as exc:
        return None, [Problem(source, f"cannot read: {exc.strerror}")]
    return parse_yaml(text, source)


def json_schema_errors(validator: Any, data: Any) -> list[tuple[tuple, str]]:
    """(path, message) for each JSON-schema error, naming its most specific cause rather than
    "is not valid under any of the given schemas"."""
    found = []
    for error in validator.iter_errors(data):
        leaf = error
        while leaf.context:
            leaf = max(leaf.context, key=lambda e: (len(e.absolute_path), e.validator == "required"))
        where = ".".join(map(str, leaf.absolute_path))
        found.append((tuple(leaf.absolute_path), (f"{where}: " if where else "") + leaf.message[:240]))
    return sorted(found)


TOO_DEEP = "nested too deeply to read (Python's recursion limit); no real record nests like that"


def parse_json_line(raw: str, source: str, line: int) -> tuple[LocatedDocument | None, list[Problem]]:
    """One line of a JSON Lines file; every problem in it points at that line."""
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        return None, [Problem(source, f"invalid JSON: {exc.msg} (column {exc.colno})", line)]
    except RecursionError:
        return None, [Problem(source, TOO_DEEP, line)]
    return LocatedDocument(source, data, {(): line}), []


def atomic_write_text(path: Path, text: str) -> None:
    """Write `text` so that readers see the old file or the new one, never a half-written one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp creates the file 0600; give it the mode the file had, or the usual one for new files.
        os.chmod(tmp_name, path.stat().st_mode & 0o777 if path.exists() else 0o666 & ~_umask())
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


@contextmanager
def replaced_atomically(path: Path) -> Iterator[Path]:
    """A fresh path beside `path` for a program that writes a whole file (DuckDB); renamed over `path`
    once the block succeeds, removed (with any write-ahead log) if it fails."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    os.unlink(tmp_name)  # DuckDB refuses to open an existing empty file as a database
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    finally:
        for leftover in (tmp, Path(f"{tmp_name}.wal")):
            leftover.unlink(missing_ok=True)


def append_shared(path: Path, chunks: Iterable[bytes]) -> int:
    """Append `chunks` to a file that several index states share and that is only ever appended to;
    returns the offset the first one starts at. Under an exclusive lock, since two processes may update
    one state at once, and on disk before the state that points at them is."""
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        start = os.lseek(fd, 0, os.SEEK_END)
        for chunk in chunks:
            view = memoryview(chunk)
            while view:
                view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)
    return start


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def _fsync_dir(directory: Path) -> None:
    # The rename is only durable once the directory entry is on disk.
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _Dumper(_SAFE_DUMPER):
    """The safe dumper, with strings, mappings and lists represented directly: what we write are trees
    of plain JSON data, so the generic path (a type lookup and alias bookkeeping per value) only costs
    time, a quarter of writing a 10k-table import. Other values take that path; the output is the same."""

    def represent_data(self, data: Any) -> yaml.Node:
        kind = type(data)
        if kind is str:
            return yaml.ScalarNode("tag:yaml.org,2002:str", data)
        if kind is dict:
            represent = self.represent_data
            return yaml.MappingNode("tag:yaml.org,2002:map", [(represent(k), represent(v)) for k, v in data.items()],
                                    flow_style=False)
        if kind is list:
            represent = self.represent_data
            return yaml.SequenceNode("tag:yaml.org,2002:seq", [represent(v) for v in data], flow_style=False)
        return super().represent_data(data)


def dump_yaml(data: Any) -> str:
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)


# Below this many documents the start-up of worker processes (0.5 s) costs more than it saves.
PARALLEL_DUMP_MIN = 200


def dump_yaml_many(documents: list[Any]) -> list[str]:
    """`dump_yaml` of each document, in worker processes when there are many and more than one core:
    writing YAML is pure Python (a third of importing 10k tables), and documents are independent."""
    workers = min(os.cpu_count() or 1, 8)
    if len(documents) < PARALLEL_DUMP_MIN or workers < 2:
        return [dump_yaml(d) for d in documents]
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    try:
        # spawn, not fork: the parent may hold DuckDB's threads, which a forked child must not inherit.
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            return list(pool.map(dump_yaml, documents, chunksize=max(1, len(documents) // (workers * 4))))
    except (OSError, BrokenProcessPool):
        return [dump_yaml(d) for d in documents]  # no processes to be had here: one core it is


def atomic_write_yaml(path: Path, data: Any) -> None:
    atomic_write_text(path, dump_yaml(data))
