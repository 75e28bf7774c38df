"""``irc.compile`` and the ``irc`` torch.compile backend, as a user sees them:
call forms, module attributes, recompilation, bad inputs, NaN/Inf, gradients."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import irc
from irc.frontends import capture

TARGETS = ["reference", "cpu"]


class Counter:
    """Counts graphs handed to the compiler (one per dynamo (re)compilation piece)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        original = capture.compile_program_once

        def counting(program, target, options):  # type: ignore[no-untyped-def]
            self.count += 1
            return original(program, target, options)

        monkeypatch.setattr(capture, "compile_program_once", counting)


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(8, 16)
        self.fc2 = nn.Linear(16, 4)
        self.register_buffer("shift", torch.full((4,), 0.5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.relu(self.fc1(x))) + self.shift


@pytest.mark.parametrize("target", TARGETS)
def test_function_and_decorator_forms(target: str, monkeypatch: pytest.MonkeyPatch) -> None:
    counter = Counter(monkeypatch)

    def f(x: torch.Tensor, y: torch.Tensor, scale: float = 2.0) -> torch.Tensor:
        return torch.tanh(x) * scale + y

    compiled = irc.compile(f, target=target)
    x, y = torch.randn(3, 4), torch.randn(4)
    torch.testing.assert_close(compiled(x, y), f(x, y))
    torch.testing.assert_close(compiled(x, y, scale=3.0), f(x, y, 3.0))
    assert counter.count >= 1

    @irc.compile(target=target)
    def g(a: torch.Tensor) -> torch.Tensor:
        """doc kept"""
        return F.gelu(a) - a.mean(-1, keepdim=True)

    torch.testing.assert_close(g(x), F.gelu(x) - x.mean(-1, keepdim=True))
    assert g.__name__ == "g" and g.__doc__ == "doc kept"


def test_bare_decorator_uses_cpu() -> None:

    @irc.compile
    def h(a: torch.Tensor) -> torch.Tensor:
        return a * a + 1

    x = torch.randn(5)
    torch.testing.assert_close(h(x), x * x + 1)


@pytest.mark.parametrize("target", TARGETS)
def test_module_wraps_not_copies(target: str) -> None:
    torch.manual_seed(0)
    model = Net().eval()
    compiled = irc.compile(model, target=target)
    assert isinstance(compiled, Net)
    assert [id(p) for p in compiled.parameters()] == [id(p) for p in model.parameters()]
    assert list(compiled.state_dict()) == list(model.state_dict())
    x = torch.randn(2, 8)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), model(x))
        model.fc1.weight.mul_(-1.5)  # in-place update of the original is seen
        model.shift.fill_(3.0)
        torch.testing.assert_close(compiled(x), model(x))
    assert compiled.train() is compiled and compiled.fc1.training
    assert compiled.eval() is compiled and not compiled.fc1.training
    compiled.load_state_dict(Net().state_dict())
    decorated = irc.compile(target=target)(model)  # decorator form on a module instance
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), model(x))
        torch.testing.assert_close(decorated(x), model(x))


@pytest.mark.parametrize("target", TARGETS)
def test_recompiles_on_new_batch_size_and_dtype(target: str, monkeypatch: pytest.MonkeyPatch) -> None:
    counter = Counter(monkeypatch)
    compiled = irc.compile(lambda x: torch.softmax(x * 3, -1).sum(0), target=target)
    for shape in [(2, 5), (7, 5), (2, 5)]:
        x = torch.randn(*shape)
        torch.testing.assert_close(compiled(x), torch.softmax(x * 3, -1).sum(0))
    assert counter.count == 2  # (2,5) compiled once and reused
    x64 = torch.randn(3, 5, dtype=torch.float64)
    out = compiled(x64)
    assert out.dtype == torch.float64
    torch.testing.assert_close(out, torch.softmax(x64 * 3, -1).sum(0))


@pytest.mark.parametrize("target", TARGETS)
def test_wrong_inputs_are_right_or_irc_errors(target: str) -> None:
    model = Net().eval()
    compiled = irc.compile(model, target=target)
    with torch.no_grad():
        compiled(torch.randn(2, 8))
        for bad in [torch.randn(2, 3, 8), torch.randn(8), torch.randint(0, 5, (2, 8)),
                    torch.randn(2, 8, dtype=torch.float64), torch.randn(2, 7)]:
            try:
                want = model(bad)
            except RuntimeError:
                # eager rejects it; compiled code may reject it too (torch's or
                # irc's error) or, where torch's decompositions are lenient about
                # dtypes, compute it with type promotion; never a crash
                try:
                    out = compiled(bad)
                except (RuntimeError, irc.IrcError):
                    continue
                promoted = model.double()(bad.double()).to(out.dtype)
                model.float()
                torch.testing.assert_close(out, promoted, atol=1e-4, rtol=1e-4)
                continue
            torch.testing.assert_close(compiled(bad), want)
    fn = irc.compile(lambda a: a.sum(-1) * 2, target=target)
    for x in [torch.randn(4), torch.randn(2, 3, 4), torch.arange(6).view(2, 3), torch.ones(3, dtype=torch.bool)]:
        torch.testing.assert_close(fn(x), x.sum(-1) * 2)


@pytest.mark.parametrize("target", TARGETS)
def test_nan_inf_propagate_like_eager(target: str) -> None:

    def f(x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return (torch.exp(x), x.amax(-1), torch.softmax(x, -1), torch.relu(x), torch.maximum(x, x * 0),
                x.sum(-1), torch.clamp(x, -1, 1), x * 0)

    x = torch.tensor([[0.5, float("nan"), 1.0], [float("inf"), -float("inf"), 2.0],
                      [1.0, 2.0, 3.0]])
    got, want = irc.compile(f, target=target)(x), f(x)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, equal_nan=True)


@pytest.mark.parametrize("target", TARGETS)
def test_training_gradients_are_correct(target: str) -> None:
    torch.manual_seed(1)
    model = Net().train()
    compiled = irc.compile(model, target=target)
    x = torch.randn(4, 8, requires_grad=True)
    loss = (compiled(x) ** 2).mean()
    loss.backward()
    grads = [p.grad.clone() for p in model.parameters()]
    x_grad = x.grad.clone()
    model.zero_grad()
    x.grad = None
    (model(x) ** 2).mean().backward()
    for a, p in zip(grads, model.parameters()):
        torch.testing.assert_close(a, p.grad)
    torch.testing.assert_close(x_grad, x.grad)


def test_graph_breaks_and_control_flow() -> None:
    def f(x: torch.Tensor) -> torch.Tensor:
        y = x * 2
        if y.sum() > 0:  # data-dependent branch: a graph break
            y = y + 1
        else:
            y = y - 1
        return torch.sigmoid(y)

    compiled = irc.compile(f, target="reference")
    for x in [torch.ones(3), -torch.ones(3)]:
        torch.testing.assert_close(compiled(x), f(x))


def test_errors_at_compile_time() -> None:
    with pytest.raises(irc.BackendError, match="unknown target"):
        irc.compile(lambda x: x, target="no-such-target")
    with pytest.raises(irc.ConfigError):
        irc.compile(lambda x: x, target="reference", options={"no_such_option": 1})
    with pytest.raises(irc.IrcError):
        irc.compile(42, target="reference")  # type: ignore[arg-type]


def test_torch_compile_backend_irc() -> None:
    import irc.dynamo_backend  # noqa: F401  (registers "irc")
    torch._dynamo.reset()
    f = torch.compile(lambda x: torch.cos(x) * 2, backend="irc", options={"target": "reference"})
    x = torch.randn(6)
    torch.testing.assert_close(f(x), torch.cos(x) * 2)


def test_options_reach_the_config(monkeypatch: pytest.MonkeyPatch) -> None:
    from irc.config import Config
    seen: list = []
    original = capture.compile_program_once

    def spy(program, target, options):  # type: ignore[no-untyped-def]
        seen.append(options)
        return original(program, target, options)

    monkeypatch.setattr(capture, "compile_program_once", spy)
    f = irc.compile(lambda x: x * 2 + 1, target="reference", options={"pipeline.graph": "dce"})
    x = torch.randn(3)
    torch.testing.assert_close(f(x), x * 2 + 1)
    assert isinstance(seen[0], Config) and seen[0].pipeline.graph == "dce"


def test_llvm_is_an_alias_of_cpu() -> None:
    f = irc.compile(lambda x: torch.sigmoid(x) * x, target="llvm")
    x = torch.randn(4, 4)
    torch.testing.assert_close(f(x), torch.sigmoid(x) * x)


def test_structured_outputs_kwargs_and_aliases() -> None:
    class Heads(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = nn.Linear(4, 4)

        def forward(self, x: torch.Tensor, *, scale: float = 1.0,
                    extra: torch.Tensor | None = None) -> dict:
            y = self.lin(x) * scale
            out = {"y": y, "n": y.shape[0], "pair": (y.relu(), None)}
            if extra is not None:
                out["e"] = extra + 1
            return out

    model = Heads().eval()
    compiled = irc.compile(model, target="reference")
    x = torch.randn(2, 4)
    with torch.no_grad():
        got, want = compiled(x, scale=2.0, extra=torch.ones(3)), model(x, scale=2.0, extra=torch.ones(3))
    assert set(got) == set(want) and got["n"] == 2 and got["pair"][1] is None
    for key in ("y", "e"):
        torch.testing.assert_close(got[key], want[key])
    torch.testing.assert_close(got["pair"][0], want["pair"][0])
    views = irc.compile(lambda a: (a, a[0], a.t(), a + 0), target="reference")(x)
    assert views[0] is x and torch.equal(views[1], x[0]) and torch.equal(views[2], x.t())
