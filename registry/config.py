"""Load a model config from YAML, validate it, and give it one canonical JSON form and hash."""

from __future__ import annotations

import hashlib
import json
import math
import multiprocessing as mp
import os
import re
import threading
import time
from collections.abc import Mapping
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures import TimeoutError as FuturesTimeout
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.resolver import Resolver

from registry.errors import ConfigError

__all__ = [
    "DEFAULT_LIMITS",
    "MAX_DEPTH",
    "MAX_NODES",
    "CanonicalConfig",
    "ConfigLimits",
    "canonical_json",
    "canonicalize",
    "check_config_size",
    "load_canonical_text",
    "load_config_file",
    "load_config_text",
    "parse_yaml",
    "plain_config",
    "read_config_file",
    "semver_of",
    "sha256_hex",
]

MAX_DEPTH = 64
"""Deepest nesting a config or canonicalised value may have (also stops alias cycles)."""

MAX_NODES = 100_000
"""Most values a config may expand to; stops YAML alias bombs before they are serialised."""


@dataclass(frozen=True)
class ConfigLimits:
    """Bounds on the work one config text may cost (the API reads them from its settings)."""

    max_bytes: int = 256 << 10
    """Largest config text, in UTF-8 bytes (a real model config is a few KiB)."""
    max_depth: int = MAX_DEPTH
    """Deepest nesting of mappings and sequences; checked before anything recurses."""
    max_seconds: float = 2.0
    """Most CPU time a parse may use before it is abandoned as too costly."""
    isolated: bool = False
    """Parse in a worker process (the API's choice): the server's threads keep the GIL, and a
    parse that overruns its time is ended by ending the process."""


DEFAULT_LIMITS = ConfigLimits()


# --- canonical JSON ------------------------------------------------------------------------------


def canonical_json(obj: Any) -> str:
    """Serialise plain JSON data to its one canonical text.

    Keys sorted, separators ``(",", ":")``, UTF-8 text kept as is (``ensure_ascii=False``), floats
    in Python's shortest round-trip form (so ``1e-05`` and ``0.00001`` are the same text) and
    ``-0.0`` written as ``0.0``. Tuples serialise as lists. The audit log hashes its events with
    this function too, so its output must never change for the same input.

    Returns:
        The canonical JSON text.

    Raises:
        ConfigError: for NaN or infinite floats, non-string mapping keys, values that are not
            JSON data (sets, bytes, dates, objects), strings that cannot be encoded as UTF-8, or
            nesting deeper than ``MAX_DEPTH``; the message names the dotted path.
    """
    plain = _checked_plain(obj, MAX_NODES * 100)
    return json.dumps(plain, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def sha256_hex(data: str | bytes) -> str:
    """Hash text (encoded as UTF-8) or bytes.

    Returns:
        The sha256 digest as 64 lowercase hex characters.

    Raises:
        ConfigError: if ``data`` is text that cannot be encoded as UTF-8 (lone surrogates).
    """
    if isinstance(data, str):
        try:
            data = data.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ConfigError(f"text cannot be encoded as UTF-8: {exc.reason}") from exc
    return hashlib.sha256(data).hexdigest()


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


class _NotJsonData(Exception):
    """Raised inside `_plain`; the path is collected on the way out, so only errors pay for it."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.path: list[str | int] = []  # innermost key first


def _plain(obj: Any, depth: int, budget: list[int]) -> Any:
    """Check that ``obj`` is JSON data and return a normalised copy (the budget is shared)."""
    if depth > MAX_DEPTH:
        raise _NotJsonData(f"nesting deeper than {MAX_DEPTH} levels (or a cyclic alias)")
    budget[0] -= 1
    if budget[0] < 0:
        raise _NotJsonData("config expands to too many values (alias bomb?)")
    # bool before int: bool is a subclass of int and must stay a JSON boolean.
    if obj is None or isinstance(obj, bool | int):
        return obj
    if isinstance(obj, float):
        if not math.isfinite(obj):
            raise _NotJsonData("NaN and infinite numbers are not allowed")
        return 0.0 if obj == 0 else obj  # -0.0 and 0.0 are one value
    if isinstance(obj, str):
        try:
            obj.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise _NotJsonData("string is not valid UTF-8 text") from exc
        return obj
    if isinstance(obj, Mapping):
        out: dict[str, Any] = {}
        for key, value in obj.items():
            if not isinstance(key, str):
                error = _NotJsonData(f"keys must be strings, got {type(key).__name__}")
                error.path.append(str(key))
                raise error
            try:
                out[key] = _plain(value, depth + 1, budget)
            except _NotJsonData as error:
                error.path.append(key)
                raise
        return out
    if isinstance(obj, list | tuple):
        items: list[Any] = []
        for index, value in enumerate(obj):
            try:
                items.append(_plain(value, depth + 1, budget))
            except _NotJsonData as error:
                error.path.append(index)
                raise
        return items
    raise _NotJsonData(f"{type(obj).__name__} is not JSON data")


def _checked_plain(obj: Any, budget: int) -> Any:
    """Return `_plain`'s copy of ``obj``, or raise ConfigError naming the dotted path."""
    try:
        return _plain(obj, 0, [budget])
    except _NotJsonData as error:
        where = _dotted(tuple(reversed(error.path)))
        raise ConfigError(f"{where}: {error.reason}") from error.__cause__


# --- YAML ----------------------------------------------------------------------------------------

_FLOAT_TAG = "tag:yaml.org,2002:float"
_INT_TAG = "tag:yaml.org,2002:int"
_BOOL_TAG = "tag:yaml.org,2002:bool"
_MERGE_TAG = "tag:yaml.org,2002:merge"
# YAML 1.1 resolvers we drop: they turn `yes`/`on`/`NO` into booleans, `1:30` into 90, `010`
# into 8, dates into date objects (not JSON) and `=` into an unconstructable value.
_DROPPED_TAGS = {
    _FLOAT_TAG,
    _INT_TAG,
    _BOOL_TAG,
    "tag:yaml.org,2002:timestamp",
    "tag:yaml.org,2002:value",
}


class _OverBudget(Exception):
    """Raised inside a loader when a parse passes its depth or time bound."""


class _Budget:
    """A parse's deadline in thread CPU time, checked as values are composed and constructed."""

    deadline = math.inf
    max_depth = MAX_DEPTH

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        if time.thread_time() > self.deadline:
            raise _OverBudget("the config took too long to parse")
        return super().construct_object(node, deep=deep)  # type: ignore[misc]


class _Yaml12Loader(_Budget, yaml.SafeLoader):
    """SafeLoader with the YAML 1.2 core schema for scalars and duplicate keys refused."""

    _depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        # PyYAML composes recursively: bound the depth before Python's stack is at risk.
        self._depth += 1
        try:
            if self._depth > self.max_depth:
                raise _OverBudget(f"nesting deeper than {self.max_depth} levels")
            if time.thread_time() > self.deadline:
                raise _OverBudget("the config took too long to parse")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    # PyYAML's own design: resolvers are a class attribute each Loader subclass copies.
    yaml_implicit_resolvers = {  # noqa: RUF012
        first: [(tag, regexp) for tag, regexp in resolvers if tag not in _DROPPED_TAGS]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, yaml.MappingNode):
            seen: set[Any] = set()
            for key_node, _ in node.value:
                if key_node.tag == _MERGE_TAG:
                    continue
                key = self.construct_object(key_node, deep=True)
                if not isinstance(key, str):
                    raise ConstructorError(
                        "while constructing a mapping",
                        node.start_mark,
                        f"keys must be strings, found {type(key).__name__} {key!r}",
                        key_node.start_mark,
                    )
                if key in seen:
                    raise ConstructorError(
                        "while constructing a mapping",
                        node.start_mark,
                        f"duplicate key {key!r}",
                        key_node.start_mark,
                    )
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _construct_int(loader: yaml.SafeLoader, node: yaml.Node) -> int:
    value = str(loader.construct_scalar(node)).replace("_", "")  # type: ignore[arg-type]
    sign = -1 if value.startswith("-") else 1
    digits = value.lstrip("+-")
    if digits.startswith("0o"):
        return sign * int(digits[2:], 8)
    if digits.startswith("0x"):
        return sign * int(digits[2:], 16)
    return sign * int(digits, 10)  # YAML 1.2: a leading zero is still decimal


def _construct_float(loader: yaml.SafeLoader, node: yaml.Node) -> float:
    value = str(loader.construct_scalar(node)).replace("_", "").lower()  # type: ignore[arg-type]
    sign = -1.0 if value.startswith("-") else 1.0
    digits = value.lstrip("+-")
    if digits == ".inf":
        return sign * math.inf
    if digits == ".nan":
        return math.nan
    return sign * float(digits)


def _add_resolver(tag: str, pattern: str, first: str) -> None:
    _Yaml12Loader.add_implicit_resolver(tag, re.compile(pattern, re.X), list(first))


_add_resolver(_BOOL_TAG, r"^(?:true|True|TRUE|false|False|FALSE)$", "tTfF")
_add_resolver(_INT_TAG, r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$", "-+0123456789")
_add_resolver(
    _FLOAT_TAG,
    r"""^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
    "-+.0123456789",
)
_Yaml12Loader.add_constructor(_INT_TAG, _construct_int)
_Yaml12Loader.add_constructor(_FLOAT_TAG, _construct_float)


def _fast_loader_class() -> Any:
    """Return our schema over libyaml's parser (several times faster), None without libyaml.

    Used only once a libyaml event scan has bounded the nesting (its composer recurses in C);
    any error is reported by parsing again with `_Yaml12Loader`, so messages do not change.
    """
    try:
        from yaml import cyaml
    except ImportError:  # PyYAML built without libyaml: every parse takes the pure-Python path
        return None
    parser: Any = vars(cyaml)["CParser"]

    class _Fast(parser, _Yaml12Loader):  # type: ignore[misc]
        def __init__(self, stream: str) -> None:
            parser.__init__(self, stream)
            SafeConstructor.__init__(self)
            Resolver.__init__(self)

    return _Fast


_FAST_LOADER = _fast_loader_class()

_OPENS = (yaml.MappingStartEvent, yaml.SequenceStartEvent)
_CLOSES = (yaml.MappingEndEvent, yaml.SequenceEndEvent)


def _fast_parse(text: str, limits: ConfigLimits, deadline: float) -> Any:
    """Return the document parsed by libyaml, or raise to send the text down the slow path."""
    if yaml.reader.Reader.NON_PRINTABLE.search(text):
        raise ValueError("non-printable characters: the pure-Python reader names them")
    depth = 0
    for event in yaml.parse(text, Loader=yaml.CSafeLoader):  # iterative, in C
        if isinstance(event, _OPENS):
            depth += 1
            if depth > limits.max_depth:
                raise _OverBudget(f"nesting deeper than {limits.max_depth} levels")
        elif isinstance(event, _CLOSES):
            depth -= 1
    loader = _FAST_LOADER(text)
    loader.deadline, loader.max_depth = deadline, limits.max_depth
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def _slow_parse(text: str, limits: ConfigLimits, deadline: float) -> Any:
    loader = _Yaml12Loader(text)
    loader.deadline, loader.max_depth = deadline, limits.max_depth
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def check_config_size(text: str, limits: ConfigLimits, *, source: str) -> None:
    """Refuse a config text over ``limits.max_bytes`` UTF-8 bytes.

    Raises:
        ConfigError: naming the size and the limit.
    """
    # Cheap bounds first: a character is 1 to 4 bytes.
    if len(text) > limits.max_bytes or (
        4 * len(text) > limits.max_bytes
        and len(text.encode("utf-8", "surrogatepass")) > limits.max_bytes
    ):
        raise ConfigError(f"{source}: the config is larger than {limits.max_bytes} bytes")


def parse_yaml(
    text: str, *, source: str = "<string>", limits: ConfigLimits = DEFAULT_LIMITS
) -> dict[str, Any]:
    """Parse one YAML document with the YAML 1.2 core schema into a mapping.

    Unquoted ``2e-5`` is a float, quoted ``"2e-5"`` stays a string, ``yes``/``on`` stay strings,
    and dates stay strings. Only safe tags are constructed. The text is bounded by ``limits``
    in bytes, nesting and parse time before and while it is parsed.

    Returns:
        The top-level mapping (string keys).

    Raises:
        ConfigError: ``"<source>:LINE:COL: message"`` (1-based) for a syntax error, a duplicate
            or non-string key; ``"<source>: ..."`` for an empty document, a top level that is
            not a mapping, or a text over a limit.
    """
    check_config_size(text, limits, source=source)
    deadline = time.thread_time() + limits.max_seconds
    try:
        try:
            if _FAST_LOADER is None:
                raise ValueError("no libyaml")
            data = _fast_parse(text, limits, deadline)
        except (yaml.YAMLError, ValueError, TypeError):
            data = _slow_parse(text, limits, deadline)  # the same outcome, PyYAML's messages
    except _OverBudget as exc:
        raise ConfigError(f"{source}: {exc} (limit of the config parser)") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "invalid YAML"
        if mark is None:
            raise ConfigError(f"{source}: {problem}") from exc
        raise ConfigError(f"{source}:{mark.line + 1}:{mark.column + 1}: {problem}") from exc
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        column = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        char = exc.character if isinstance(exc.character, int) else ord(exc.character)
        raise ConfigError(
            f"{source}:{line}:{column}: character U+{char:04X} is not allowed in YAML"
        ) from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: {exc}") from exc
    if data is None:
        raise ConfigError(f"{source}: the config is empty; expected a mapping")
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping, got {type(data).__name__}")
    return data


# --- parsing in a worker process -------------------------------------------------------------

_POOL: ProcessPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def _pool() -> ProcessPoolExecutor:
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            # spawn: a fresh interpreter that imports only this module's needs, never a fork of
            # a server with threads and database connections. One worker: parses queue.
            _POOL = ProcessPoolExecutor(
                max_workers=1,
                mp_context=mp.get_context("spawn"),
                initializer=_watch_parent,
                initargs=(os.getpid(),),
            )
        return _POOL


def _watch_parent(parent: int) -> None:
    """In the worker: exit as soon as the server that started it is gone (even by SIGKILL)."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(0)

    threading.Thread(target=watch, name="mmgov-parent-watch", daemon=True).start()


def _end_pool(pool: ProcessPoolExecutor) -> None:
    global _POOL
    with _POOL_LOCK:
        if _POOL is pool:
            _POOL = None
    for process in list(getattr(pool, "_processes", {}).values()):  # no public kill
        process.kill()
    pool.shutdown(wait=False, cancel_futures=True)


def _load_here(text: str, source: str, limits: ConfigLimits) -> CanonicalConfig:
    """In the worker: parse, check and canonicalise, so the server only unpickles the result."""
    return load_canonical_text(text, source=source, limits=replace(limits, isolated=False))


def _parse_isolated(text: str, source: str, limits: ConfigLimits) -> CanonicalConfig:
    pool = _pool()
    try:
        future = pool.submit(_load_here, text, source, limits)
    except BrokenProcessPool:
        _end_pool(pool)
        pool = _pool()
        future = pool.submit(_load_here, text, source, limits)
    try:
        # The worker bounds its CPU time itself; the wall-clock bound (queueing behind another
        # parse included) ends a worker that stopped answering.
        return future.result(timeout=4 * limits.max_seconds + 10)
    except FuturesTimeout:
        _end_pool(pool)
        raise ConfigError(f"{source}: the config took too long to parse") from None
    except BrokenProcessPool:
        _end_pool(pool)
        raise ConfigError(f"{source}: the config parser stopped (too large to parse?)") from None


# --- canonical config ----------------------------------------------------------------------------

_SEMVER = re.compile(
    r"^v?[0-9]+\.[0-9]+(?:\.[0-9]+)?"
    r"(?:-[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?$"
)


@dataclass(frozen=True)
class CanonicalConfig:
    """A config in canonical form, with its hash."""

    data: dict[str, Any]
    canonical_json: str
    hash: str
    semver: str | None


def _dotted(loc: tuple[int | str, ...] | list[int | str]) -> str:
    path = ""
    for part in loc:
        path = _join(path, part)
    return path or "<root>"


def plain_config(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Check that ``raw`` is a mapping of JSON data and return its normalised copy.

    Returns:
        A copy with ``-0.0`` as ``0.0`` and tuples as lists; nothing else is changed.

    Raises:
        ConfigError: naming the dotted path, for a top level that is not a mapping, NaN/Inf,
            non-string keys, values that are not JSON data, nesting deeper than ``MAX_DEPTH`` or
            more than ``MAX_NODES`` values.
    """
    if not isinstance(raw, Mapping):
        raise ConfigError(f"<root>: the config must be a mapping, got {type(raw).__name__}")
    plain: dict[str, Any] = _checked_plain(raw, MAX_NODES)
    return plain


def semver_of(data: Mapping[str, Any]) -> str | None:
    """Return ``model.version`` when it is a semantic-version string (``v1.2.0``, ``1.0``)."""
    section = data.get("model")
    version = section.get("version") if isinstance(section, Mapping) else None
    if isinstance(version, str) and len(version) <= 64 and _SEMVER.match(version):
        return version
    return None


def canonicalize(raw: Mapping[str, Any]) -> CanonicalConfig:
    """Give a config (any mapping of JSON data) its canonical form and hash.

    No layout is imposed: what a model's config must look like is its schema's business
    (`registry.config_schema`), applied before this. Keys are sorted and numbers normalised by
    `canonical_json`, so ``2e-5`` and ``0.00002`` hash alike.

    Returns:
        The canonical config; ``hash`` is the sha256 of ``canonical_json``; ``semver`` is
        ``model.version`` when that is a semantic-version string.

    Raises:
        ConfigError: as `plain_config`.
    """
    return _canonical_of(plain_config(raw))


def _canonical_of(plain: dict[str, Any]) -> CanonicalConfig:
    """Canonicalise data `plain_config` returned (it is not walked again)."""
    text = json.dumps(plain, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return CanonicalConfig(
        data=plain, canonical_json=text, hash=sha256_hex(text), semver=semver_of(plain)
    )


def load_config_text(
    text: str, *, source: str = "<string>", limits: ConfigLimits = DEFAULT_LIMITS
) -> dict[str, Any]:
    """Parse a YAML (or JSON) config, bounded by ``limits``, and check that it is JSON data.

    Returns:
        The plain mapping (see `plain_config`), ready for a schema check and `canonicalize`.

    Raises:
        ConfigError: for YAML errors (``source:line:col``), a text over a limit and non-JSON
            data (dotted path, prefixed with ``source``).
    """
    if limits.isolated:
        return load_canonical_text(text, source=source, limits=limits).data
    raw = parse_yaml(text, source=source, limits=limits)
    try:
        return plain_config(raw)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc.detail}") from exc


def load_canonical_text(
    text: str, *, source: str = "<string>", limits: ConfigLimits = DEFAULT_LIMITS
) -> CanonicalConfig:
    """Parse a YAML (or JSON) config as `load_config_text` does and canonicalise it.

    With ``limits.isolated`` all of it (parse, JSON-data check, canonical JSON, hash) runs in
    the worker process: the server's share of a large config is unpickling the result.

    Returns:
        The same `CanonicalConfig` as ``canonicalize(load_config_text(text, ...))``.

    Raises:
        ConfigError: as `load_config_text`.
    """
    if limits.isolated:
        check_config_size(text, limits, source=source)  # before the text is sent anywhere
        return _parse_isolated(text, source, limits)
    return _canonical_of(load_config_text(text, source=source, limits=limits))


def read_config_file(path: str | os.PathLike[str]) -> str:
    """Read a config file as UTF-8 text.

    Returns:
        The text.

    Raises:
        ConfigError: if the file cannot be read or decoded, naming it.
    """
    file = Path(path)
    try:
        return file.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{file}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read config: {exc.strerror or exc}") from exc


def load_config_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a YAML config file (UTF-8) and check that it is JSON data.

    Returns:
        The plain mapping.

    Raises:
        ConfigError: if the file cannot be read or decoded, or as ``load_config_text``.
    """
    return load_config_text(read_config_file(path), source=str(path))
