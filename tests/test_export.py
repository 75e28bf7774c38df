"""irc.export / irc.load / the C ABI: round trips against eager, in fresh processes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import irc
from irc.errors import CacheError, InputMismatchError, IrcError, PackageError

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = ("xdsl", "llvmlite", "triton")

LOAD_AND_RUN = """
import sys, torch, irc
from safetensors.torch import load_file, save_file
model = irc.load(sys.argv[1])
inputs = load_file(sys.argv[2])
out = model(**inputs)
out = out if isinstance(out, tuple) else (out,)
# outputs may share storage (a model returning one value twice): save copies
save_file({str(i): t.clone() for i, t in enumerate(out)}, sys.argv[3])
bad = sorted(k for k in sys.modules if k.split('.')[0] in %r or k.startswith('torch._dynamo'))
assert not bad, bad
""" % (FORBIDDEN,)


def _fresh_process_outputs(pkg: Path, inputs: dict[str, torch.Tensor], tmp: Path) -> list[torch.Tensor]:
    from safetensors.torch import load_file, save_file
    save_file({k: v.contiguous() for k, v in inputs.items()}, str(tmp / "in.safetensors"))
    proc = subprocess.run([sys.executable, "-c", LOAD_AND_RUN, str(pkg), str(tmp / "in.safetensors"),
                           str(tmp / "out.safetensors")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = load_file(str(tmp / "out.safetensors"))
    return [out[str(i)] for i in range(len(out))]


class MLP(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = torch.nn.Linear(8, 32)
        self.b = torch.nn.Linear(32, 5)
        self.norm = torch.nn.LayerNorm(32)

    def forward(self, x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        return self.b(torch.nn.functional.gelu(self.norm(self.a(x)))) * scale


@pytest.fixture(autouse=True)
def _own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IRC_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture
def mlp_package(tmp_path: Path) -> tuple[Path, MLP, dict[str, torch.Tensor]]:
    torch.manual_seed(0)
    model = MLP().eval()
    inputs = {"x": torch.randn(4, 8), "scale": torch.randn(5)}
    return irc.export(model, inputs, tmp_path / "mlp.ircpkg"), model, inputs


@pytest.mark.parametrize("quantize", ["none", "int8", "int4"])
def test_round_trip_in_a_fresh_process(tmp_path: Path, quantize: str) -> None:
    torch.manual_seed(1)
    model = MLP().eval()
    inputs = {"x": torch.randn(4, 8), "scale": torch.randn(5)}
    pkg = irc.export(model, inputs, tmp_path / "m.ircpkg", options={"quantize.weights": quantize})
    manifest = json.loads((pkg / "manifest.json").read_text())
    assert manifest["weights"]["quantized"] == (None if quantize == "none" else quantize)
    assert manifest["kernels"] >= 1 and [i["name"] for i in manifest["inputs"]] == ["x", "scale"]
    fresh = {"x": torch.randn(4, 8), "scale": torch.randn(5)}
    (out,) = _fresh_process_outputs(pkg, fresh, tmp_path)
    with torch.no_grad():
        ref = model(**fresh)
        compiled = irc.compile(model, options={"quantize.weights": quantize}, strict=True)(**fresh)
    tol = {"none": 1e-5, "int8": 5e-2, "int4": 2.5e-1}[quantize]  # int4: the permuted-input path
    torch.testing.assert_close(out, ref, atol=tol, rtol=tol)
    torch.testing.assert_close(out, compiled, atol=1e-5, rtol=1e-5)
    (native,) = _run_c(pkg, fresh, tmp_path)  # the quantized matmul kernel from C too
    np.testing.assert_allclose(native, compiled.numpy(), atol=1e-5, rtol=1e-5)


def test_loaded_model_checks_inputs_like_the_jit(mlp_package) -> None:
    pkg, model, inputs = mlp_package
    loaded = irc.load(pkg)
    torch.testing.assert_close(loaded(inputs["x"], inputs["scale"]), loaded(**inputs))
    with pytest.raises(InputMismatchError, match=r"input 0 \(x\).*shape \[3, 8\]"):
        loaded(torch.randn(3, 8), inputs["scale"])
    with pytest.raises(InputMismatchError, match="dtype torch.float64"):
        loaded(inputs["x"].double(), inputs["scale"])
    with pytest.raises(InputMismatchError, match="non-contiguous"):
        loaded(torch.randn(8, 4).t(), inputs["scale"])
    with pytest.raises(InputMismatchError, match="missing input scale"):
        loaded(x=inputs["x"])


def _copy(pkg: Path, tmp: Path, name: str) -> Path:
    dst = tmp / name
    shutil.copytree(pkg, dst)
    return dst


def test_corrupt_packages_are_clear_errors(mlp_package, tmp_path: Path) -> None:
    pkg = mlp_package[0]
    truncated = _copy(pkg, tmp_path, "truncated.ircpkg")
    lib = truncated / "model.so"
    lib.write_bytes(lib.read_bytes()[:1000])
    with pytest.raises(PackageError, match=r"model\.so: 1000 bytes.*truncated"):
        irc.load(truncated)
    altered = _copy(pkg, tmp_path, "altered.ircpkg")
    weights = altered / "weights.safetensors"
    data = bytearray(weights.read_bytes())
    data[-3] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(PackageError, match=r"weights\.safetensors: checksum mismatch"):
        irc.load(altered)
    edited = _copy(pkg, tmp_path, "edited.ircpkg")
    schedule = edited / "schedule.json"
    schedule.write_text(schedule.read_text().replace('"arena_bytes":', '"arena_bytes": 1 ,"x":'))
    with pytest.raises(PackageError, match=r"schedule\.json: .*(bytes|checksum)"):
        irc.load(edited)
    version = _copy(pkg, tmp_path, "version.ircpkg")
    manifest = json.loads((version / "manifest.json").read_text())
    manifest["format_version"] = 99
    (version / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(PackageError, match="format version 99.*export the model again"):
        irc.load(version)
    renamed = _copy(pkg, tmp_path, "renamed.ircpkg")
    manifest = json.loads((renamed / "manifest.json").read_text())
    manifest["inputs"].reverse()  # would bind x to scale
    (renamed / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(PackageError, match="inputs disagree with schedule.json"):
        irc.load(renamed)
    cpu = _copy(pkg, tmp_path, "cpu.ircpkg")
    manifest = json.loads((cpu / "manifest.json").read_text())
    manifest["cpu"]["arch"] = "riscv64"
    (cpu / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(PackageError, match="compiled for riscv64"):
        irc.load(cpu)


def test_files_others_could_write_are_refused(mlp_package, tmp_path: Path) -> None:
    pkg = _copy(mlp_package[0], tmp_path, "shared.ircpkg")
    os.chmod(pkg / "model.so", 0o664)
    with pytest.raises(PackageError, match=r"model\.so: this file is writable by group"):
        irc.load(pkg)
    os.chmod(pkg / "model.so", 0o644)
    os.chmod(pkg, 0o777)
    with pytest.raises(PackageError, match="package directory is writable by group or others"):
        irc.load(pkg)
    os.chmod(pkg, 0o755)
    irc.load(pkg)


def test_cache_directory_is_private(tmp_path: Path) -> None:
    from irc.cache import CacheConfig, open_cache
    store = open_cache(CacheConfig(dir=str(tmp_path / "c")))
    assert store is not None and (os.stat(tmp_path / "c").st_mode & 0o777) == 0o700
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o777)
    with pytest.raises(CacheError, match=f"{shared}.*writable by group or others"):
        open_cache(CacheConfig(dir=str(shared)))


def test_export_errors_name_the_problem(tmp_path: Path) -> None:
    def breaks(x: torch.Tensor) -> torch.Tensor:
        y = x * 2
        print("graph break")
        return y + 1
    with pytest.raises(IrcError, match="breaks into 2 graphs"):
        irc.export(breaks, (torch.randn(3),), tmp_path / "b.ircpkg")
    with pytest.raises(IrcError, match="target 'cuda' cannot be exported"):
        irc.export(MLP(), (torch.randn(4, 8), torch.randn(5)), tmp_path / "c.ircpkg", target="cuda")

    def sorts(x: torch.Tensor) -> torch.Tensor:
        return torch.sort(x, dim=-1).values * 2
    x = torch.randn(4, 6)
    with pytest.raises(IrcError, match=r"no C ABI.*graph\.aten_call.*test_export\.py"):
        irc.export(sorts, (x,), tmp_path / "s.ircpkg", c_abi=True)
    pkg = irc.export(sorts, (x,), tmp_path / "s.ircpkg")  # the Python loader runs torch's op
    manifest = json.loads((pkg / "manifest.json").read_text())
    assert not manifest["c_abi"]["available"] and "aten::sort" in manifest["library_calls"]["torch"][0]
    torch.testing.assert_close(irc.load(pkg)(x), sorts(x))


def test_cli_export(tmp_path: Path) -> None:
    src = tmp_path / "net.py"
    src.write_text("import torch\ntorch.manual_seed(0)\n"
                   "net = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU())\n")
    out = tmp_path / "net.ircpkg"
    proc = subprocess.run([sys.executable, "-m", "irc.cli", "export", f"{src}:net",
                           "--example-inputs", "float32[2,8]", "-o", str(out)],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert "C ABI   yes" in proc.stdout
    assert irc.load(out)(torch.randn(2, 8)).shape == (2, 16)
    bad = subprocess.run([sys.executable, "-m", "irc.cli", "export", f"{src}:net",
                          "--example-inputs", "float32(2,8)", "-o", str(out)],
                         capture_output=True, text=True, cwd=ROOT)
    assert bad.returncode == 1 and "cannot read" in bad.stderr and "Traceback" not in bad.stderr


def _run_c(pkg: Path, inputs: dict[str, torch.Tensor], tmp: Path) -> list[np.ndarray]:
    manifest = json.loads((pkg / "manifest.json").read_text())
    assert manifest["c_abi"]["available"], manifest["c_abi"]
    exe = tmp / "run_model"
    subprocess.run(["cc", "-O2", "-Wall", "-I", str(pkg), "-o", str(exe),
                    str(ROOT / "examples/c_runner/run_model.c"), "-ldl"], check=True)
    io = tmp / "io"
    io.mkdir(exist_ok=True)
    for i, spec in enumerate(manifest["inputs"]):
        inputs[spec["name"]].contiguous().numpy().tofile(io / f"input_{i}.bin")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    proc = subprocess.run([str(exe), str(pkg), str(io)], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    return [np.fromfile(io / f"output_{i}.bin", dtype=spec["dtype"]).reshape(spec["shape"])
            for i, spec in enumerate(manifest["outputs"])]


def test_c_runner_matches_eager(mlp_package, tmp_path: Path) -> None:
    pkg, model, _ = mlp_package
    fresh = {"x": torch.randn(4, 8), "scale": torch.randn(5)}
    (out,) = _run_c(pkg, fresh, tmp_path)
    with torch.no_grad():
        np.testing.assert_allclose(out, model(**fresh).numpy(), atol=1e-5, rtol=1e-5)


def test_c_runner_reports_a_bad_package(mlp_package, tmp_path: Path) -> None:
    inputs = {"x": torch.randn(4, 8), "scale": torch.randn(5)}
    pkg = _copy(mlp_package[0], tmp_path, "bad.ircpkg")
    weights = pkg / "weights.safetensors"
    good = weights.read_bytes()
    weights.write_bytes(good[:-4])
    with pytest.raises(AssertionError, match="truncated"):
        _run_c(pkg, inputs, tmp_path)
    altered = bytearray(good)
    altered[-2] ^= 1
    weights.write_bytes(bytes(altered))
    with pytest.raises(AssertionError, match="weights.safetensors: checksum mismatch"):
        _run_c(pkg, inputs, tmp_path)
    weights.write_bytes(good)
    os.chmod(pkg, 0o775)
    with pytest.raises(AssertionError, match="writable by group or others"):
        _run_c(pkg, inputs, tmp_path)
    manifest = json.loads((pkg / "manifest.json").read_text())
    manifest["format_version"] = 2
    os.chmod(pkg, 0o755)
    (pkg / "manifest.json").write_text(json.dumps(manifest, indent=1))
    with pytest.raises(AssertionError, match="not an irc package of format version 1"):
        _run_c(pkg, inputs, tmp_path)


class Vision(torch.nn.Module):
    """Convolutions (strided, dilated, grouped, 1-d), batch norm, every pooling."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = torch.nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.bn = torch.nn.BatchNorm2d(8)
        self.c2 = torch.nn.Conv2d(8, 8, 3, padding=2, dilation=2, groups=2, bias=False)
        self.c3 = torch.nn.Conv1d(4, 6, 3, padding=1)

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        F = torch.nn.functional
        y = F.max_pool2d(torch.relu(self.bn(self.c1(x))), 3, 2, 1)
        y = F.avg_pool2d(self.c2(y), 2, ceil_mode=True, count_include_pad=False)
        return F.adaptive_avg_pool2d(y, (1, 1)).flatten(1), F.gelu(self.c3(z))


def test_c_runner_runs_convolutions(tmp_path: Path) -> None:
    torch.manual_seed(3)
    model = Vision().eval()
    with torch.no_grad():  # non-trivial batch-norm statistics
        model.bn.running_mean.uniform_(-1, 1)
        model.bn.running_var.uniform_(0.5, 2)
    example = (torch.randn(2, 3, 17, 15), torch.randn(2, 4, 9))
    pkg = irc.export(model, example, tmp_path / "v.ircpkg", c_abi=True)
    fresh = {"x": torch.randn(2, 3, 17, 15), "z": torch.randn(2, 4, 9)}
    with torch.no_grad():
        ref = model(**fresh)
    for got, want in zip(_run_c(pkg, fresh, tmp_path), ref):
        np.testing.assert_allclose(got, want.numpy(), atol=1e-5, rtol=1e-5)


class Epilogues(torch.nn.Module):
    """Convolutions whose activation (relu6, silu, sigmoid, tanh) or residual add
    + relu the cpu pipeline fuses into graph.conv_epilogue."""

    def __init__(self) -> None:
        super().__init__()
        self.convs = torch.nn.ModuleList(torch.nn.Conv2d(4, 4, 3, padding=1) for _ in range(5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b, c, d, e = self.convs
        y = torch.nn.functional.relu6(a(x))
        y = torch.nn.functional.silu(b(y))
        y = torch.sigmoid(c(y)) + torch.tanh(d(y))
        return torch.relu(e(y) + y)


def test_packages_run_conv_epilogues(tmp_path: Path) -> None:
    torch.manual_seed(4)
    model = Epilogues().eval()
    pkg = irc.export(model, (torch.randn(1, 4, 6, 5),), tmp_path / "e.ircpkg", c_abi=True)
    schedule = json.loads((pkg / "schedule.json").read_text())
    ops = json.dumps(schedule)
    assert ops.count('"graph.conv_epilogue"') >= 4, "the epilogues were not fused: nothing to test"
    fresh = {"x": torch.randn(1, 4, 6, 5) * 3}
    with torch.no_grad():
        ref = model(**fresh)
    (out,) = _fresh_process_outputs(pkg, fresh, tmp_path)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    (native,) = _run_c(pkg, fresh, tmp_path)
    np.testing.assert_allclose(native, ref.numpy(), atol=1e-5, rtol=1e-5)


ZOO_DEFAULT = ["gpt2", "bert", "resnet"]
ZOO_SLOW = ["llama", "mistral", "qwen2", "phi", "gpt_neox", "opt", "bloom", "falcon", "roberta",
            "distilbert", "deberta_v2", "albert", "t5", "bart", "whisper", "vit", "deit", "swin",
            "convnext", "mobilenet_v2", "segformer", "wav2vec2"]


@pytest.mark.parametrize("name", ZOO_DEFAULT + [pytest.param(n, marks=pytest.mark.slow)
                                                for n in ZOO_SLOW])
def test_zoo_round_trip(name: str, tmp_path: Path) -> None:
    from zoo.models import ZOO, flat_tensors
    model, inputs = ZOO[name].make()
    pkg = irc.export(model, inputs, tmp_path / f"{name}.ircpkg")
    fresh = ZOO[name].fresh_inputs(model, seed=7)
    with torch.no_grad():
        ref = flat_tensors(model(**fresh))
    outs = _fresh_process_outputs(pkg, fresh, tmp_path)
    assert len(outs) == len(ref)
    for got, want in zip(outs, ref):
        torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)
    for got, want in zip(_run_c(pkg, fresh, tmp_path), ref):
        np.testing.assert_allclose(got, want.numpy(), atol=1e-4, rtol=1e-4)


# -- the same native schedule on the JIT path (option host_schedule="native") ----------

@pytest.mark.parametrize("name", ["gpt2", "resnet"])
def test_jit_native_host_schedule_matches_eager(name: str) -> None:
    from zoo.models import ZOO, flat_tensors
    model, inputs = ZOO[name].make()
    compiled = irc.compile(model, strict=True, options={"host_schedule": "native"})
    fresh = ZOO[name].fresh_inputs(model, seed=5)
    with torch.no_grad():
        got, want = flat_tensors(compiled(**inputs)), flat_tensors(model(**inputs))
        for a, b in zip(got, want):
            torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)
        for a, b in zip(flat_tensors(compiled(**fresh)), flat_tensors(model(**fresh))):
            torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)
    assert compiled.irc_stats.kernels > 0


def test_jit_native_host_schedule_checks_inputs_and_reuses_the_cache(tmp_path: Path) -> None:
    torch.manual_seed(2)
    model = MLP().eval()
    options = {"host_schedule": "native", "cache.dir": str(tmp_path / "c")}
    compiled = irc.compile(model, strict=True, options=options)
    x, scale = torch.randn(4, 8), torch.randn(5)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x, scale), model(x, scale), atol=1e-5, rtol=1e-5)
        libs = list((tmp_path / "c" / "native").glob("*.so"))
        assert len(libs) == 1 and (libs[0].stat().st_mode & 0o777) == 0o600
        with torch.no_grad():  # a weight updated in place is seen (it is an argument)
            model.a.weight.mul_(2)
        torch.testing.assert_close(compiled(x, scale), model(x, scale), atol=1e-5, rtol=1e-5)

    def sorts(x: torch.Tensor) -> torch.Tensor:
        return torch.sort(x, dim=-1).values * 2
    with pytest.raises(IrcError, match=r"host_schedule='native'.*graph\.aten_call"):
        irc.compile(sorts, options=options)(torch.randn(3, 4))


def _attention_cases() -> list[tuple[str, object, tuple]]:
    F = torch.nn.functional
    sdpa = F.scaled_dot_product_attention
    g = torch.Generator().manual_seed(0)

    def r(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g)
    q, k, v = r(2, 4, 5, 8), r(2, 4, 7, 8), r(2, 4, 7, 6)
    return [
        ("cross", lambda q, k, v: sdpa(q, k, v), (q, k, v)),
        ("causal", lambda q, k, v: sdpa(q, k, v, is_causal=True), (r(2, 4, 6, 8), r(2, 4, 6, 8),
                                                                    r(2, 4, 6, 8))),
        ("bool-mask", lambda q, k, v, m: sdpa(q, k, v, attn_mask=m),
         (q, k, v, torch.rand(5, 7, generator=g) > 0.3)),
        ("float-mask", lambda q, k, v, m: sdpa(q, k, v, attn_mask=m, scale=0.3), (q, k, v, r(2, 1, 5, 7))),
        ("gqa", lambda q, k, v: sdpa(q, k, v, enable_gqa=True), (q, r(2, 2, 7, 8), r(2, 2, 7, 6))),
        ("3d", lambda q, k, v: sdpa(q, k, v), (q[0], k[0], v[0])),
        ("strided", lambda q, k, v: sdpa(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)),
         (r(2, 5, 4, 8), r(2, 7, 4, 8), r(2, 7, 4, 6))),
        ("matmul-broadcast", lambda a, b: a @ b, (r(3, 5, 8), r(1, 8, 6))),
        ("matmul-transposed", lambda a, b: a @ b.t(), (r(3, 5, 8), r(6, 8))),
        ("wide-concat", lambda *xs: torch.cat([x.t() for x in xs], 0) * 2,
         tuple(r(3, 4) for _ in range(6))),
        ("gather", lambda x, i: torch.gather(x, 1, i) + 1,
         (r(4, 5), torch.randint(0, 5, (4, 3), generator=g))),
    ]


@pytest.mark.parametrize("case", _attention_cases(), ids=lambda c: c[0])
def test_native_library_calls_match_eager(case: tuple) -> None:
    """irc's own C attention, matmul, concat and gather (host_schedule='native')."""
    _, fn, args = case
    compiled = irc.compile(fn, strict=True, options={"host_schedule": "native"})
    torch.testing.assert_close(compiled(*args), fn(*args), atol=1e-5, rtol=1e-5)
