"""Structured configuration: key spellings, types, sources and precedence,
errors that name the key, pass/backend options derived from their dataclasses,
``irc config show``, and the driver using the configured pipeline and options."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass

from irc.backends import registry as backend_registry
from irc.backends.base import Backend, BackendOptions, Executable, Level
from irc.cache import CacheConfig
from irc.cli import main as irc_main
from irc.config import Config
from irc.driver import compile_program
from irc.errors import ConfigError
from irc.frontends.program import Program
from irc.ir.interpreter import interpret
from irc.ir.text import parse_module
from irc.passes import registry as pass_registry
from irc.passes.pipeline import LEVEL_PIPELINES

MODULE = """builtin.module {
  func.func @main(%x: tensor<4x8xf32>, %y: tensor<8xf32>) -> tensor<4x8xf32> {
    %0 = graph.add %x, %y : (tensor<4x8xf32>, tensor<8xf32>) -> tensor<4x8xf32>
    %1 = graph.relu %0 : tensor<4x8xf32> -> tensor<4x8xf32>
    %2 = graph.exp %1 : tensor<4x8xf32> -> tensor<4x8xf32>
    func.return %2 : tensor<4x8xf32>
  }
}"""


def test_defaults_reproduce_the_level_pipelines() -> None:
    config = Config.from_options(None)
    for level, text in LEVEL_PIPELINES.items():
        assert config.pipeline_for(level) == text
    assert config.provenance("fuse.max_ops") == "default"
    assert config.cache == CacheConfig() and config.logging.level == "WARNING"


def test_each_backend_owns_its_pipeline() -> None:
    config = Config.from_options(None)
    cpu, cuda = config.pipeline_for("cpu").split(","), config.pipeline_for("cuda").split(",")
    # the CPU BLAS heuristic runs for cpu only; splitting reductions is its own pass
    assert "swap-skinny-matmul" in cpu and "swap-skinny-matmul" not in cuda
    assert cpu[-2:] == ["split-full-reductions", "lower-to-loops"]
    assert cuda[-2:] == ["memory-plan", "matmul-epilogues"]
    assert config.pipeline_for("reference") == LEVEL_PIPELINES["graph"]
    assert config.pipeline_for("cpu", to="kernel") == ",".join(cpu[:cpu.index("memory-plan") + 1])
    assert config.pipeline_for("cpu", start="kernel") == "split-full-reductions,lower-to-loops"
    # a configured stage replaces that stage for every backend
    over = Config.from_options({"pipeline.kernel": "fuse"})
    assert over.pipeline_for("cpu").split(",")[-3:] == ["fuse", "split-full-reductions",
                                                        "lower-to-loops"]
    assert over.pipeline_for("cuda").endswith(",fuse")
    with pytest.raises(ConfigError, match="unknown IR level or backend 'nope'"):
        config.pipeline_for("nope")


def test_cli_config_pipeline_prints_what_compile_runs(capsys: pytest.CaptureFixture[str]) -> None:
    for target in ("cpu", "cuda"):
        assert irc_main(["config", "pipeline", "--target", target, "--set", "fuse.max_ops=8"]) == 0
        expected = Config.from_options({"fuse.max_ops": 8}).pipeline_for(target)
        assert capsys.readouterr().out.strip() == expected and "fuse{max-ops=8}" in expected


@pytest.mark.parametrize("options", [
    {"fuse.max_ops": 16},
    {"passes.fuse.max_ops": 16},
    {"fuse.max-ops": 16},
    {"passes": {"fuse": {"max_ops": 16}}},
    {"fuse": {"max-ops": 16}},
])
def test_key_spellings_all_reach_the_pass(options: Mapping[str, object]) -> None:
    config = Config.from_options(options)
    assert config.get("passes.fuse.max_ops") == 16
    assert config.pass_options("fuse") == {"max_ops": 16}
    assert "fuse{max-ops=16}" in config.pipeline_for("kernel").split(",")
    assert config.pipeline_for("graph") == LEVEL_PIPELINES["graph"]
    assert config.provenance("fuse.max_ops") == "options"
    assert config.passes["fuse"].max_ops == 16


def test_pass_options_render_into_every_occurrence_and_override_the_text() -> None:
    config = Config.from_options({"canonicalize.max_iterations": 3,
                                  "pipeline.kernel": "canonicalize{max-iterations=9},fuse"})
    text = config.pipeline_for("kernel")
    assert "canonicalize{max-iterations=3}" in text
    assert "max-iterations=9" not in text  # the configuration wins over the pipeline text
    from irc.passes.pipeline import parse_pipeline
    passes = parse_pipeline(text)
    # twice in the graph stage (before and after constant-fold), once in pipeline.kernel
    assert [p.max_iterations for p in passes if p.name == "canonicalize"] == [3, 3, 3]


def test_sources_and_precedence(tmp_path: Path) -> None:
    yaml_file = tmp_path / "irc.yaml"
    yaml_file.write_text("passes:\n  fuse:\n    max_ops: 8\ncache:\n  enabled: false\n"
                         "logging.level: INFO\n")
    config = Config.from_options({"logging.level": "DEBUG", "fuse.max_ops": 12},
                                 yaml_path=yaml_file, sets=["fuse.max_ops=20"])
    assert config.get("fuse.max_ops") == 20 and config.provenance("fuse.max_ops") == "--set"
    assert config.logging.level == "DEBUG" and config.provenance("logging.level") == "options"
    assert config.cache.enabled is False
    assert config.provenance("cache.enabled") == f"yaml:{yaml_file}"
    assert config.provenance("cache.dir") == "default"


@pytest.mark.parametrize("text, key, value", [
    ("fuse.max_ops=0x10", "passes.fuse.max_ops", 16),
    ("cache.enabled=off", "cache.enabled", False),
    ("cache.enabled=TRUE", "cache.enabled", True),
    ("cache.dir=/tmp/x y", "cache.dir", "/tmp/x y"),
    ("logging.level=info", "logging.level", "INFO"),
    ("logging.print-ir-after-all=1", "logging.print_ir_after_all", True),
])
def test_set_values_are_parsed_to_the_field_type(text: str, key: str, value: object) -> None:
    config = Config.from_options(None, sets=[text])
    assert config.get(key) == value and type(config.get(key)) is type(value)
    assert config.provenance(key) == "--set"


@pytest.mark.parametrize("options, sets, match", [
    ({"fuse.max_op": 1}, (), r"unknown configuration key 'fuse.max_op'; did you mean "
                             r"'passes.fuse.max_ops'"),
    ({"passes.fuze.max_ops": 1}, (), r"unknown pass 'passes.fuze.max_ops'; did you mean 'passes.fuse'"),
    ({"cache.dirr": "x"}, (), r"did you mean 'cache.dir'.*valid: cache.enabled, cache.dir"),
    ({"fuse.max_ops": "16"}, (), r"'passes.fuse.max_ops' must be int, got '16'"),
    ({"fuse.max_ops": True}, (), r"'passes.fuse.max_ops' must be int"),
    ({"cache.enabled": 1}, (), r"'cache.enabled' must be bool"),
    ({"logging.level": "LOUD"}, (), r"'logging.level' must be one of DEBUG, INFO"),
    (None, ["fuse.max_ops=lots"], r"'passes.fuse.max_ops' must be int, got 'lots'"),
    (None, ["fuse.max_ops"], r"--set expects KEY=VALUE"),
    ({"pipeline.graph": "dce,csee"}, (), r"'pipeline.graph': unknown pass 'csee'; did you mean 'cse'"),
    ({"pipeline.graph": "dce{"}, (), r"'pipeline.graph': malformed pipeline"),
    ({"backend.nosuch.x": 1}, (), r"unknown backend 'backend.nosuch.x'"),
    ({"nonsense": 1}, (), r"unknown configuration key 'nonsense'"),
])
def test_errors_name_the_key(options: Mapping[str, object] | None, sets: list[str],
                             match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        Config.from_options(options, sets=sets)


def test_yaml_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read configuration file"):
        Config.from_options(None, yaml_path=tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("passes:\n  fuse: [1,\n")
    with pytest.raises(ConfigError, match=r"bad.yaml:\d+:\d+: error: malformed YAML"):
        Config.from_options(None, yaml_path=bad)
    listing = tmp_path / "list.yaml"
    listing.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="must be a mapping"):
        Config.from_options(None, yaml_path=listing)
    typo = tmp_path / "typo.yaml"
    typo.write_text("fuse:\n  max_ops: many\n")
    with pytest.raises(ConfigError, match="'passes.fuse.max_ops' must be int"):
        Config.from_options(None, yaml_path=typo)


@dataclass(frozen=True)
class _ToyPass(ModulePass):
    """A pass registered by a test: its options must appear in the configuration."""

    name = "toy-pass"

    depth: int = 2
    label: str = "x"
    scales: tuple[int, ...] = (1, 2)
    limit: int | None = None

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        return None


def test_new_pass_options_appear_by_themselves(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(pass_registry._BUILTIN, "toy-pass", f"{__name__}:_ToyPass")
    config = Config.from_options({"toy_pass.depth": 5, "pipeline.graph": "dce,toy-pass"},
                                 sets=["toy-pass.scales=3,4", "toy-pass.limit=7",
                                       "toy-pass.label=hello"])
    assert config.passes["toy-pass"] == _ToyPass(depth=5, label="hello", scales=(3, 4), limit=7)
    assert config.pipeline_for("graph") == 'dce,toy-pass{depth=5 scales=3,4 limit=7 label="hello"}'
    from irc.passes.pipeline import parse_pipeline
    assert parse_pipeline(config.pipeline_for("graph"))[1] == config.passes["toy-pass"]
    rows, _ = config.settings(backends=[])
    assert {r.key: r.source for r in rows}["passes.toy_pass.depth"] == "options"
    with pytest.raises(ConfigError, match="did you mean 'passes.toy_pass.depth'"):
        Config.from_options({"toy-pass.dept": 1})


@dataclass(frozen=True)
class _ToyOptions(BackendOptions):
    threads: int = 1
    fast_math: bool = False
    cache: CacheConfig = CacheConfig()


class _ToyBackend(Backend):
    name = "toy"
    level = Level.GRAPH
    Options = _ToyOptions
    seen: list[_ToyOptions] = []

    def compile(self, module: ModuleOp, weights: Mapping[str, torch.Tensor],
                options: BackendOptions) -> Executable:
        assert isinstance(options, _ToyOptions)
        _ToyBackend.seen.append(options)
        return lambda *inputs: interpret(module, inputs, weights)


@pytest.fixture
def toy_backend(monkeypatch: pytest.MonkeyPatch) -> type[_ToyBackend]:
    monkeypatch.setitem(backend_registry._REGISTERED, "toy", _ToyBackend)
    _ToyBackend.seen = []
    return _ToyBackend


def test_backend_options_come_from_the_options_dataclass(toy_backend: type[_ToyBackend]) -> None:
    config = Config.from_options({"backend.toy.threads": 4, "cache.dir": "/tmp/c"},
                                 sets=["toy.fast_math=yes"])
    options = config.backend_options(toy_backend())
    assert options == _ToyOptions(threads=4, fast_math=True, cache=CacheConfig(dir="/tmp/c"))
    assert config.backend_options("toy") == options
    bare = Config.from_options({"threads": 2}, target="toy")
    assert bare.backend_options("toy").threads == 2
    assert bare.provenance("backend.toy.threads") == "options"
    with pytest.raises(ConfigError, match="did you mean 'backend.toy.threads'"):
        Config.from_options({"backend.toy.thread": 2})
    with pytest.raises(ConfigError, match="'backend.toy.threads' must be int"):
        Config.from_options({"toy.threads": 2.5})


def _program() -> Program:
    module, _ = parse_module(MODULE, "test.mlir")
    return Program(module, {})


def test_driver_uses_configured_pipeline_options_and_logging(
        toy_backend: type[_ToyBackend], capsys: pytest.CaptureFixture[str]) -> None:
    x, y = torch.randn(4, 8), torch.randn(8)
    expected = torch.exp(torch.relu(x + y))
    run = compile_program(_program(), "toy", {"threads": 3, "pipeline.graph": "cse,dce",
                                              "logging.print_ir_after_all": True})
    torch.testing.assert_close(run(x, y)[0], expected)
    assert toy_backend.seen[-1].threads == 3
    err = capsys.readouterr().err
    assert "IR Dump After cse" in err and "IR Dump After dce" in err
    assert "IR Dump After canonicalize" not in err
    # A ready Options instance and a Config are accepted as well.
    compile_program(_program(), "toy", _ToyOptions(threads=7))
    assert toy_backend.seen[-1].threads == 7
    compile_program(_program(), "toy", Config.from_options(None, sets=["toy.threads=5"]))
    assert toy_backend.seen[-1].threads == 5
    with pytest.raises(ConfigError, match="unknown configuration key 'thread'"):
        compile_program(_program(), "toy", {"thread": 1})


def test_cli_config_show(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                         toy_backend: type[_ToyBackend]) -> None:
    yaml_file = tmp_path / "irc.yaml"
    yaml_file.write_text("cache:\n  dir: /srv/cache\n")
    assert irc_main(["config", "show", "--config", str(yaml_file), "--set", "fuse.max_ops=16",
                     "--target", "toy"]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line for line in out.splitlines() if line and not line.startswith("#")}
    default_max_ops = Config.from_options(None).get("fuse.max_ops")
    assert lines["passes.fuse.max_ops"].split()[1:] == ["16", "(--set;", "default",
                                                        f"{default_max_ops})"]
    assert lines["cache.dir"].split()[1:] == ["/srv/cache", f"(yaml:{yaml_file};", "default", '"")']
    assert lines["backend.toy.threads"].split()[1:] == ["1", "(default)"]
    assert lines["pipeline.graph"].split()[1:] == ["none", "(default)"]  # the backend's own
    assert "fuse{max-ops=16}" in out
    assert irc_main(["config", "show", "pipeline", "--level", "kernel", "--set",
                     "fuse.max_ops=16"]) == 0
    assert capsys.readouterr().out.strip() == LEVEL_PIPELINES["kernel"].replace(
        "fuse", "fuse{max-ops=16}")
    assert irc_main(["config", "show", "fuse.max_ops"]) == 0
    assert capsys.readouterr().out.strip() == str(Config.from_options(None).get("fuse.max_ops"))
    assert irc_main(["config", "show", "--set", "fuse.max_opss=1"]) == 1
    assert "did you mean 'passes.fuse.max_ops'" in capsys.readouterr().err


@dataclass(frozen=True)
class _UnionCacheOptions(BackendOptions):
    cache: CacheConfig | bool = CacheConfig()


class _UnionCacheBackend(_ToyBackend):
    name = "toy2"
    Options = _UnionCacheOptions


def test_cache_field_typed_as_a_union_takes_the_section_or_an_explicit_value(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(backend_registry._REGISTERED, "toy2", _UnionCacheBackend)
    config = Config.from_options({"cache.dir": "/srv/c"})
    assert config.backend_options("toy2").cache == CacheConfig(dir="/srv/c")
    explicit = Config.from_options({"cache": False}, target="toy2")  # bare key: the backend field
    assert explicit.backend_options("toy2").cache is False
    assert explicit.provenance("backend.toy2.cache") == "options"
    rows, _ = Config.from_options(None).settings(backends=["toy2"])
    assert str({r.key: r.value for r in rows}["backend.toy2.cache"]) == "<the cache section>"
