"""One typed configuration for a compile: pipelines, pass options, backend
options, cache and logging.

Sections (every key is ``section.field`` or ``section.name.field``):

* ``pipeline.graph|kernel|loops``: replace one lowering stage's text for
  every backend (unset: each backend's own stage, ``Backend.pipeline``);
  :meth:`Config.pipeline_for` chains the stages down to a backend's level and
  applies the pass options.
* ``passes.<pass>.<option>``: the fields of each registered pass's dataclass
  (``passes.fuse.max_ops``); a new pass option appears here by itself.
* ``backend.<backend>.<option>``: the fields of the backend's ``Options``
  dataclass (loaded only when a key names that backend, or by ``irc config show``).
* ``cache.enabled|dir`` (:class:`irc.cache.CacheConfig`),
  ``logging.level|print_ir_after_all`` and ``quantize.weights|group_size|merge``
  (weight-only int8/int4, :class:`QuantizeConfig`).

Short keys: ``fuse.max_ops`` means ``passes.fuse.max_ops``, ``cpu.threads``
means ``backend.cpu.threads``, and with ``target=`` a bare backend field
(``threads``) means ``backend.<target>.threads``. Dashes and underscores are
interchangeable (``max-ops``). Sources, later winning: defaults, the YAML
file, the options mapping, ``--set KEY=VALUE``. Unknown keys and wrong types
raise :class:`ConfigError` naming the key, with close matches and the valid keys.
"""

from __future__ import annotations

import dataclasses
import difflib
import logging
import types
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

from irc.cache import CacheConfig
from irc.errors import BackendError, ConfigError, IrcError
from irc.passes import pipeline as default_pipelines
from irc.passes.registry import get_pass, pass_names

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
LEVELS: tuple[str, ...] = default_pipelines.LEVELS
_SIMPLE_SECTIONS = ("pipeline", "cache", "logging", "quantize")


@dataclass(frozen=True)
class PipelineConfig:
    """Replacements of lowering stages, as pipeline text (None: the backend's own)."""

    graph: str | None = None
    """graph -> graph optimisations (default: the backend's graph stage)."""
    kernel: str | None = None
    """graph -> kernel: layouts and fusion (default: the backend's kernel stage)."""
    loops: str | None = None
    """kernel -> loops: bufferisation (default: the backend's loops stage)."""


@dataclass(frozen=True)
class LoggingConfig:
    """What irc reports while compiling."""

    level: LogLevel = "WARNING"
    """Level of the ``irc`` logger."""
    print_ir_after_all: bool = False
    """Print the module to stderr after each pass of a compile."""
    reproducer_dir: str | None = None
    """Folder for the .mlir reproducer of an internal compiler error (default:
    ``$TMPDIR/irc-reproducers``)."""


@dataclass(frozen=True)
class QuantizeConfig:
    """Weight-only quantization of linear layers (the ``quantize-weights`` pass,
    then ``merge-quantized-matmuls``, added at the end of the graph stage when
    ``weights`` is not "none")."""

    weights: Literal["none", "int8", "int4"] = "none"
    """"int8": per output channel; "int4": two per byte, per group of input channels."""
    group_size: int = 0
    """Input channels per scale (0: per channel at int8, 64 at int4)."""
    merge: bool = True
    """Also run ``merge-quantized-matmuls`` (one call for the quantized layers
    that share an input, e.g. q/k/v; bit-identical results)."""

    def pass_spec(self) -> str | None:
        """The passes to add to the graph stage, or None."""
        if self.weights == "none":
            return None
        bits = 8 if self.weights == "int8" else 4
        spec = f"quantize-weights{{bits={bits} group-size={self.group_size}}}"
        return f"{spec},merge-quantized-matmuls" if self.merge else spec


_SECTION_TYPES: dict[str, type] = {"pipeline": PipelineConfig, "cache": CacheConfig,
                                   "logging": LoggingConfig, "quantize": QuantizeConfig}


@dataclass(frozen=True)
class Setting:
    """One effective value: ``irc config show`` prints a row per setting."""

    key: str
    value: Any
    source: str
    default: Any


# ----------------------------------------------------------------------------
# the schema: which keys exist and their types


def _option_fields(cls: type, what: str) -> dict[str, tuple[Any, Any]]:
    """field name -> (type, default) of a dataclass's settable fields."""
    try:
        hints = get_type_hints(cls)
    except Exception as err:
        raise ConfigError(f"cannot read the option types of {what}: {err}") from None
    out: dict[str, tuple[Any, Any]] = {}
    for f in dataclasses.fields(cls):
        tp = hints.get(f.name, Any)
        if f.name == "name" or not f.init or tp is CacheConfig:
            continue  # a CacheConfig field is filled from the cache section
        if _is_cache_field(tp):  # e.g. ``CacheConfig | bool``: settable as the other types
            rest = tuple(a for a in get_args(tp) if a is not CacheConfig)
            out[f.name] = (rest[0] if len(rest) == 1 else Union[rest], FROM_CACHE_SECTION)
            continue
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = dataclasses.MISSING
        out[f.name] = (tp, default)
    return out


class _FromCacheSection:
    """Default of a backend option typed ``CacheConfig | ...``: the cache section."""

    def __repr__(self) -> str:
        return "<the cache section>"

    __str__ = __repr__


FROM_CACHE_SECTION = _FromCacheSection()


def _is_cache_field(tp: Any) -> bool:
    return tp is CacheConfig or CacheConfig in get_args(tp)


def _pass_sections() -> dict[str, str]:
    """config section name (``constant_fold``) -> pass name (``constant-fold``)."""
    return {n.replace("-", "_"): n for n in pass_names()}


def _pass_fields(pass_name: str) -> dict[str, tuple[Any, Any]]:
    try:
        cls = get_pass(pass_name)
    except IrcError:
        raise
    except Exception as err:
        raise ConfigError(f"pass '{pass_name}' cannot be loaded ({type(err).__name__}: {err}), "
                          f"so its options cannot be set") from None
    return _option_fields(cls, f"pass '{pass_name}'")


def _backend_options_class(name: str) -> type:
    from irc.backends.registry import get_backend
    return type(get_backend(name)).Options


def _backend_fields(name: str) -> dict[str, tuple[Any, Any]]:
    return _option_fields(_backend_options_class(name), f"backend '{name}'")


def _backend_canonical(name: str) -> str | None:
    from irc.backends.registry import backend_names, canonical_name
    name = canonical_name(name)
    return name if name in backend_names() else None


def _norm(segment: str) -> str:
    return segment.strip().replace("-", "_")


class _Resolver:
    """Maps user keys to qualified keys and their (type, default)."""

    def __init__(self, target: str | None) -> None:
        self.target = _backend_canonical(target) if target else None

    def resolve(self, key: str) -> tuple[str, Any, Any]:
        if not isinstance(key, str) or not key:
            raise ConfigError(f"configuration keys are non-empty strings, got {key!r}")
        parts = [_norm(p) for p in key.split(".")]
        head = parts[0]
        if len(parts) == 1 and self.target is not None:
            fields = self._safe_backend_fields(self.target)
            if head in fields:
                return self._backend(key, [self.target, head])
        if head in _SIMPLE_SECTIONS:
            fields = _option_fields(_SECTION_TYPES[head], head)
            return self._field(key, head, parts[1:], fields)
        if head == "passes":
            return self._pass(key, parts[1:])
        if head == "backend":
            return self._backend(key, parts[1:])
        if len(parts) == 2 and head in _pass_sections():
            return self._pass(key, parts)
        if len(parts) == 2 and _backend_canonical(head) is not None:
            return self._backend(key, parts)
        self._unknown(key, self._all_keys())
        raise AssertionError  # _unknown raises

    def _field(self, key: str, prefix: str, rest: list[str],
               fields: dict[str, tuple[Any, Any]]) -> tuple[str, Any, Any]:
        valid = [f"{prefix}.{f}" for f in fields]
        if len(rest) != 1 or rest[0] not in fields:
            self._unknown(key, valid)
        tp, default = fields[rest[0]]
        return f"{prefix}.{rest[0]}", tp, default

    def _pass(self, key: str, rest: list[str]) -> tuple[str, Any, Any]:
        sections = _pass_sections()
        if not rest or rest[0] not in sections:
            self._unknown(key, [f"passes.{s}" for s in sections], what="pass")
        return self._field(key, f"passes.{rest[0]}", rest[1:], _pass_fields(sections[rest[0]]))

    def _backend(self, key: str, rest: list[str]) -> tuple[str, Any, Any]:
        from irc.backends.registry import backend_names
        name = _backend_canonical(rest[0]) if rest else None
        if name is None:
            self._unknown(key, [f"backend.{b}" for b in backend_names()], what="backend")
        assert name is not None
        return self._field(key, f"backend.{name}", rest[1:], _backend_fields(name))

    def _safe_backend_fields(self, name: str) -> dict[str, tuple[Any, Any]]:
        try:
            return _backend_fields(name)
        except IrcError:
            return {}

    def _all_keys(self) -> list[str]:
        keys = [f"{s}.{f}" for s in _SIMPLE_SECTIONS for f in _option_fields(_SECTION_TYPES[s], s)]
        for section, name in _pass_sections().items():
            try:
                keys += [f"passes.{section}.{f}" for f in _pass_fields(name)]
            except IrcError:
                continue
        if self.target is not None:
            keys += [f"backend.{self.target}.{f}" for f in self._safe_backend_fields(self.target)]
        return keys

    @staticmethod
    def _unknown(key: str, valid: list[str], what: str = "configuration key") -> None:
        short = {k.removeprefix("passes."): k for k in valid if k.startswith("passes.")}
        probe = _norm(key)
        close = difflib.get_close_matches(probe, [*valid, *short], n=3, cutoff=0.6)
        close = list(dict.fromkeys(short.get(c, c) for c in close))
        hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        listing = ", ".join(valid) if valid else "there are no keys there"
        raise ConfigError(f"unknown {what} '{key}'{hint} (valid: {listing})")


# ----------------------------------------------------------------------------
# values


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def coerce(key: str, value: Any, tp: Any, from_text: bool) -> Any:
    """``value`` as a ``tp``; text (from ``--set``) is parsed, other values
    must already have the type (ints are accepted for floats)."""
    origin, args = get_origin(tp), get_args(tp)
    if origin in (Union, types.UnionType):
        return _coerce_union(key, value, tp, from_text)
    if origin is Literal:
        choices = list(args)
        probe = str(value).strip().upper() if from_text and all(
            isinstance(c, str) and c.isupper() for c in choices) else value
        if probe in choices:
            return probe
        raise ConfigError(f"'{key}' must be one of {', '.join(map(str, choices))}, got {value!r}")
    if origin is tuple:
        items = [v for v in str(value).split(",") if v.strip()] if from_text else value
        if not isinstance(items, (list, tuple)):
            raise ConfigError(f"'{key}' must be a list of {_type_name(args[0])}, got {value!r}")
        return tuple(coerce(key, v, args[0], from_text) for v in items)
    if tp is Any:
        return value
    parse = _PARSERS.get(tp)
    if parse is not None:
        ok, result = parse(value, from_text)
        if ok:
            return result
    elif isinstance(tp, type) and isinstance(value, tp):
        return value
    raise ConfigError(f"'{key}' must be {_type_name(tp)}, got {value!r} ({type(value).__name__})")


def _coerce_union(key: str, value: Any, tp: Any, from_text: bool) -> Any:
    args = get_args(tp)
    if value is None or (from_text and str(value).strip().lower() in ("none", "null", "")):
        if type(None) in args:
            return None
    for option in (a for a in args if a is not type(None)):
        try:
            return coerce(key, value, option, from_text)
        except ConfigError:
            continue
    raise ConfigError(f"'{key}' must be {_type_name(tp)}, got {value!r}")


def _parse_bool(value: Any, from_text: bool) -> tuple[bool, Any]:
    if not from_text:
        return isinstance(value, bool), value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True, True
    if text in ("false", "0", "no", "off"):
        return True, False
    return False, None


def _parse_int(value: Any, from_text: bool) -> tuple[bool, Any]:
    if not from_text:
        return isinstance(value, int) and not isinstance(value, bool), value
    try:
        return True, int(str(value).strip(), 0)
    except ValueError:
        return False, None


def _parse_float(value: Any, from_text: bool) -> tuple[bool, Any]:
    if not from_text:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return ok, float(value) if ok else None
    try:
        return True, float(str(value).strip())
    except ValueError:
        return False, None


def _parse_str(value: Any, from_text: bool) -> tuple[bool, Any]:
    ok = from_text or isinstance(value, str)
    return ok, str(value) if ok else None


# (accepted, value) for the scalar option types; text from ``--set`` is parsed
_PARSERS: dict[Any, Callable[[Any, bool], tuple[bool, Any]]] = {
    bool: _parse_bool, int: _parse_int, float: _parse_float, str: _parse_str}


def _flatten(options: Mapping[str, Any], prefix: str = "") -> Iterable[tuple[str, Any]]:
    for k, v in options.items():
        if not isinstance(k, str):
            raise ConfigError(f"configuration keys are strings, got {k!r}")
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            yield from _flatten(v, key + ".")
        else:
            yield key, v


def _read_yaml(path: str | Path) -> Mapping[str, Any]:
    import yaml
    try:
        text = Path(path).read_text()
    except OSError as err:
        raise ConfigError(f"cannot read configuration file {path}: {err.strerror or err}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
        raise ConfigError(f"{where}: error: malformed YAML: {getattr(err, 'problem', err)}") from None
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path}: the configuration must be a mapping of keys to values, "
                          f"got {type(data).__name__}")
    return data


def _validate_pipeline(key: str, text: str) -> None:
    from xdsl.utils.arg_spec import parse_pipeline as parse_specs
    from xdsl.utils.exceptions import ArgSpecParseError
    try:
        specs = list(parse_specs(text))
    except ArgSpecParseError as err:
        raise ConfigError(f"'{key}': malformed pipeline '{text}': "
                          f"{str(err).strip().splitlines()[-1]}") from None
    names = pass_names()
    for spec in specs:
        if spec.name not in names:
            close = difflib.get_close_matches(spec.name, names, n=1, cutoff=0.5)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise ConfigError(f"'{key}': unknown pass '{spec.name}'{hint} (passes: {', '.join(names)})")


def _render_value(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, tuple):
        return ",".join(_render_value(v) for v in value)
    return str(value)


# ----------------------------------------------------------------------------
# the configuration


@dataclass(frozen=True)
class Config:
    """The effective configuration of a compile (build it with :meth:`from_options`).

    ``values`` holds every explicitly set value by qualified key and
    ``sources`` where each came from; everything else is a default.
    """

    pipeline: PipelineConfig = field(default_factory=PipelineConfig)
    cache: CacheConfig = field(default_factory=CacheConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    quantize: QuantizeConfig = field(default_factory=QuantizeConfig)
    values: Mapping[str, Any] = field(default_factory=dict)
    sources: Mapping[str, str] = field(default_factory=dict)
    target: str | None = None

    @classmethod
    def from_options(cls, options: Mapping[str, Any] | Config | None = None,
                     yaml_path: str | Path | None = None, sets: Iterable[str] = (),
                     target: str | None = None) -> Config:
        """Defaults, then the YAML file, then ``options`` (nested or dotted
        keys), then ``sets`` (``"KEY=VALUE"`` strings, values parsed to the
        field's type). ``target`` lets bare backend fields (``threads``) name
        that backend's options."""
        values: dict[str, Any] = {}
        sources: dict[str, str] = {}
        if isinstance(options, Config):
            values.update(options.values)
            sources.update(options.sources)
            target = target or options.target
            options = None
        resolver = _Resolver(target)
        layers: list[tuple[str, list[tuple[str, Any]], bool]] = []
        if yaml_path is not None:
            layers.append((f"yaml:{yaml_path}", list(_flatten(_read_yaml(yaml_path))), False))
        if options:
            if not isinstance(options, Mapping):
                raise ConfigError(f"options must be a mapping of configuration keys to values, "
                                  f"got {type(options).__name__}")
            layers.append(("options", list(_flatten(options)), False))
        if isinstance(sets, str):
            sets = [sets]
        layers.append(("--set", [_split_set(s) for s in sets], True))
        for source, items, from_text in layers:
            for key, value in items:
                qualified, tp, _ = resolver.resolve(key)
                values[qualified] = coerce(qualified, value, tp, from_text)
                sources[qualified] = source
        for level in LEVELS:
            if values.get(f"pipeline.{level}") is not None:
                _validate_pipeline(f"pipeline.{level}", values[f"pipeline.{level}"])
        sections = {name: _SECTION_TYPES[name](**{k.split(".")[1]: v for k, v in values.items()
                                                  if k.split(".")[0] == name})
                    for name in _SIMPLE_SECTIONS}
        return cls(**sections, values=types.MappingProxyType(values),
                   sources=types.MappingProxyType(sources), target=resolver.target)

    # -- queries ---------------------------------------------------------------

    def _qualify(self, key: str) -> tuple[str, Any]:
        qualified, _, default = _Resolver(self.target).resolve(key)
        return qualified, default

    def get(self, key: str) -> Any:
        """The effective value of ``key`` (any accepted spelling)."""
        qualified, default = self._qualify(key)
        return self.values.get(qualified, default)

    def provenance(self, key: str) -> str:
        """``"default"``, ``"options"``, ``"yaml:<path>"`` or ``"--set"``."""
        qualified, _ = self._qualify(key)
        return self.sources.get(qualified, "default")

    def pass_options(self, pass_name: str) -> dict[str, Any]:
        """The explicitly set options of one pass (field name -> value)."""
        prefix = f"passes.{pass_name.replace('-', '_')}."
        return {k[len(prefix):]: v for k, v in self.values.items() if k.startswith(prefix)}

    def pipeline_for(self, target: Any, to: str | None = None, start: str | None = None) -> str:
        """The text pipeline a compile runs, with the configured pass options
        written in, e.g. ``dce,cse,...,fuse{max-ops=16}``: for a backend (a
        Backend, or its name) its stages (``Backend.pipeline``) down to its
        level; for an IR level (graph, kernel or loops) the default stages
        (:data:`irc.passes.pipeline.DEFAULT_STAGES`) down to it. A configured
        ``pipeline.<stage>`` replaces that stage. ``irc opt --pass-pipeline``
        on this text does exactly what a compile does. ``to`` stops at an
        earlier level; ``start`` (a level the module is already at) leaves
        out the stages down to it (``irc translate`` of kernel-level text)."""
        name = getattr(target, "value", target)
        if isinstance(name, str) and name in LEVELS:
            stages, level = default_pipelines.DEFAULT_STAGES, name
        else:
            if isinstance(target, str):
                from irc.backends.registry import get_backend
                if _backend_canonical(target) is None:
                    raise ConfigError(f"unknown IR level or backend '{target}' "
                                      f"(levels: {', '.join(LEVELS)})")
                target = get_backend(target)
            stages, level = target.pipeline, target.level.value
        for given in (to, start):
            if given is not None and given not in LEVELS:
                raise ConfigError(f"unknown IR level '{given}' (levels: {', '.join(LEVELS)})")
        if to is not None and LEVELS.index(to) < LEVELS.index(level):
            level = to
        first = LEVELS.index(start) + 1 if start is not None else 0
        chosen = []
        for lv in LEVELS[first:LEVELS.index(level) + 1]:
            override = getattr(self.pipeline, lv)
            chosen.append(stages.get(lv, "") if override is None else override)
            quantize = self.quantize.pass_spec()
            if lv == "graph" and quantize is not None:  # before any layout pass
                chosen.append(quantize)
        return self.apply_pass_options(",".join(s for s in chosen if s.strip()))

    def apply_pass_options(self, pipeline: str) -> str:
        """``pipeline`` with each pass's configured options added (a value in
        the configuration overrides one written in the pipeline)."""
        from xdsl.utils.arg_spec import parse_pipeline as parse_specs
        from xdsl.utils.exceptions import ArgSpecParseError
        try:
            specs = list(parse_specs(pipeline))
        except ArgSpecParseError as err:
            raise ConfigError(f"malformed pipeline '{pipeline}': "
                              f"{str(err).strip().splitlines()[-1]}") from None
        rendered = []
        for spec in specs:
            params: dict[str, str] = {}
            for name, vals in spec.parameters.items():
                text = ",".join(_render_value(v) for v in vals)
                params[_norm(name)] = f"{name.replace('_', '-')}={text}" if vals else name
            for name, value in self.pass_options(spec.name).items():
                dashed = name.replace("_", "-")
                params[name] = dashed if value is None else f"{dashed}={_render_value(value)}"
            rendered.append(spec.name + (f"{{{' '.join(params.values())}}}" if params else ""))
        return ",".join(rendered)

    def backend_options(self, backend: Any) -> Any:
        """An instance of ``backend.Options`` with the configured values
        (``backend``: a Backend, its class, or its name). A field typed
        :class:`CacheConfig` receives the ``cache`` section."""
        from irc.backends.registry import canonical_name, get_backend
        if isinstance(backend, str):
            name, options_cls = canonical_name(backend), type(get_backend(backend)).Options
        else:
            name, options_cls = canonical_name(backend.name), backend.Options
        prefix = f"backend.{name}."
        kwargs = {k[len(prefix):]: v for k, v in self.values.items() if k.startswith(prefix)}
        try:
            hints = get_type_hints(options_cls)
        except Exception:
            hints = {}
        for f in dataclasses.fields(options_cls):
            if _is_cache_field(hints.get(f.name)) and f.name not in kwargs:
                kwargs[f.name] = self.cache
        try:
            return options_cls(**kwargs)
        except (TypeError, ValueError) as err:
            raise ConfigError(f"invalid options for backend '{name}': {err}") from None

    @cached_property
    def passes(self) -> Mapping[str, Any]:
        """Pass name -> the pass instance with its configured options, for
        every registered pass that loads (e.g. ``config.passes["fuse"].max_ops``)."""
        out: dict[str, Any] = {}
        for name in pass_names():
            try:
                out[name] = get_pass(name)(**self.pass_options(name))
            except Exception:  # a pass that does not load yet has no options to show
                continue
        return types.MappingProxyType(out)

    def settings(self, backends: Iterable[str] | None = None) -> tuple[list[Setting], list[str]]:
        """Every setting (for ``irc config show``) and notes on the passes
        and backends whose options could not be read. ``backends``: which
        backends to list (default: every installed one)."""
        from irc.backends.registry import backend_names
        rows: list[Setting] = []
        notes: list[str] = []

        def add(prefix: str, fields: dict[str, tuple[Any, Any]]) -> None:
            for f, (_, default) in fields.items():
                key = f"{prefix}.{f}"
                rows.append(Setting(key, self.values.get(key, default),
                                    self.sources.get(key, "default"), default))

        for section in _SIMPLE_SECTIONS:
            add(section, _option_fields(_SECTION_TYPES[section], section))
        for section, name in _pass_sections().items():
            try:
                add(f"passes.{section}", _pass_fields(name))
            except IrcError as err:
                notes.append(str(err))
        for name in sorted(set(backends) if backends is not None else backend_names()):
            try:
                add(f"backend.{name}", _backend_fields(name))
            except (IrcError, Exception) as err:
                notes.append(str(err) if isinstance(err, BackendError) else
                             f"backend '{name}': {type(err).__name__}: {err}")
        return rows, notes

    def apply_logging(self) -> None:
        """Set the ``irc`` logger's level from ``logging.level``."""
        logging.getLogger("irc").setLevel(self.logging.level)


def _split_set(text: str) -> tuple[str, str]:
    key, sep, value = str(text).partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set expects KEY=VALUE (e.g. fuse.max_ops=16), got '{text}'")
    return key.strip(), value.strip()
