"""The processes of tests/test_distributed.py (one per rank).

    python tests/distributed_workers.py CASE RANK WORLD PORT OUT_PREFIX

Each rank joins a gloo process group on 127.0.0.1:PORT, runs CASE (eager
DDP / FSDP2 against the irc-compiled forms, from the same initial weights and
the same per-rank batches) and writes what it measured as JSON to
``OUT_PREFIX.RANK.json``; the test asserts on it.
"""

from __future__ import annotations

import copy
import json
import os
import sys
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import irc  # noqa: E402
import irc.frontends.capture as capture  # noqa: E402

STEPS = 3


class MLP(torch.nn.Module):
    """Four linear layers of about 1 MiB each: several DDP buckets at bucket_cap_mb=1."""

    def __init__(self) -> None:
        super().__init__()
        self.layers = torch.nn.ModuleList([torch.nn.Linear(16, 512), torch.nn.Linear(512, 512),
                                           torch.nn.Linear(512, 512), torch.nn.Linear(512, 4)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = torch.relu(x)
        return x


class CNN(torch.nn.Module):
    """Conv + batch norm (running statistics updated in training) + linear head."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.bn1 = torch.nn.BatchNorm2d(8)
        self.conv2 = torch.nn.Conv2d(8, 16, 3, padding=1, stride=2)
        self.bn2 = torch.nn.BatchNorm2d(16)
        self.head = torch.nn.Linear(16, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn1(self.conv1(x)))
        x = torch.relu(self.bn2(self.conv2(x)))
        return self.head(x.mean(dim=(2, 3)))


def _count_irc_graphs() -> list[int]:
    """Record each graph irc compiles (forward and backward pieces)."""
    seen: list[int] = []
    original = capture.compile_graph

    def counting(gm: torch.fx.GraphModule, *args: Any, **kwargs: Any) -> Any:
        seen.append(len(gm.graph.nodes))
        return original(gm, *args, **kwargs)

    capture.compile_graph = counting
    return seen


def _train(model: torch.nn.Module, params: list[torch.nn.Parameter], batches: list[Any],
           loss_fn: Callable[[Any, Any], torch.Tensor], after_first_forward: Callable[[], None] | None = None
           ) -> dict[str, Any]:
    opt = torch.optim.SGD(params, lr=0.05, momentum=0.9)
    losses = []
    for step, batch in enumerate(batches):
        opt.zero_grad()
        out = model(**batch) if isinstance(batch, dict) else model(batch)
        if step == 0 and after_first_forward is not None:
            after_first_forward()
        loss = loss_fn(out, batch)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return {"losses": losses, "grads": [p.grad.detach().clone() for p in params],
            "params": [p.detach().clone() for p in params]}


def _max_diff(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    return max(float((x - y).abs().max()) for x, y in zip(a, b, strict=True))


def _compare(eager: dict[str, Any], compiled: dict[str, Any]) -> dict[str, Any]:
    return {"grad_diff": _max_diff(eager["grads"], compiled["grads"]),
            "param_diff": _max_diff(eager["params"], compiled["params"]),
            "grad_scale": max(float(g.abs().max()) for g in eager["grads"]),
            "eager_losses": eager["losses"], "irc_losses": compiled["losses"]}


def _ddp_forms(base: torch.nn.Module, batches: list[Any], loss_fn: Callable[[Any, Any], torch.Tensor],
               forms: list[str], bucket_cap_mb: float) -> dict[str, Any]:
    """Eager DDP, then each irc form from the same weights; per form the
    differences and how many graphs irc compiled before the first backward."""
    eager_model = copy.deepcopy(base)
    eager = _train(DDP(eager_model, bucket_cap_mb=bucket_cap_mb), list(eager_model.parameters()),
                   batches, loss_fn)
    seen = _count_irc_graphs()
    result: dict[str, Any] = {}
    for form in forms:
        model = copy.deepcopy(base)
        if form == "irc(ddp)":
            wrapped = irc.compile(DDP(model, bucket_cap_mb=bucket_cap_mb))
        elif form == "torch.compile(ddp)":
            wrapped = torch.compile(DDP(model, bucket_cap_mb=bucket_cap_mb), backend="irc")
        else:
            wrapped = DDP(irc.compile(model), bucket_cap_mb=bucket_cap_mb)
        torch._dynamo.reset()
        before = len(seen)
        forward_graphs: list[int] = []
        compiled = _train(wrapped, list(model.parameters()), batches, loss_fn,
                          lambda: forward_graphs.append(len(seen) - before))
        result[form] = _compare(eager, compiled)
        result[form]["forward_graphs"] = forward_graphs[0]
        result[form]["all_graphs"] = len(seen) - before
    return result


def _dynamo_pieces(base: torch.nn.Module, x: torch.Tensor, bucket_cap_mb: float) -> int:
    """How many graphs dynamo's DDPOptimizer hands a backend for this model."""
    graphs: list[int] = []

    def counting_backend(gm: torch.fx.GraphModule, example_inputs: list[Any]) -> Any:
        graphs.append(len(gm.graph.nodes))
        return gm.forward

    torch._dynamo.reset()
    torch.compile(DDP(copy.deepcopy(base), bucket_cap_mb=bucket_cap_mb), backend=counting_backend)(x)
    torch._dynamo.reset()
    return len(graphs)


def case_mlp(rank: int, world: int) -> dict[str, Any]:
    torch.manual_seed(0)
    base = MLP()
    gen = torch.Generator().manual_seed(100 + rank)
    batches = [torch.randn(8, 16, generator=gen) for _ in range(STEPS)]
    targets = torch.randn(8, 4, generator=gen)

    def loss_fn(out: torch.Tensor, batch: Any) -> torch.Tensor:
        return torch.nn.functional.mse_loss(out, targets)

    result = _ddp_forms(base, batches, loss_fn, ["irc(ddp)", "torch.compile(ddp)", "ddp(irc)"],
                        bucket_cap_mb=1)
    result["dynamo_pieces"] = _dynamo_pieces(base, batches[0], bucket_cap_mb=1)
    return result


def case_mlp_sequential(rank: int, world: int) -> dict[str, Any]:
    """A built-in torch.nn.Sequential inside DDP (dynamo skips torch.nn frames)."""
    torch.manual_seed(0)
    base = torch.nn.Sequential(torch.nn.Linear(16, 512), torch.nn.ReLU(), torch.nn.Linear(512, 512),
                               torch.nn.ReLU(), torch.nn.Linear(512, 4))
    gen = torch.Generator().manual_seed(100 + rank)
    batches = [torch.randn(8, 16, generator=gen) for _ in range(STEPS)]
    return _ddp_forms(base, batches, lambda out, batch: out.square().mean(), ["irc(ddp)", "ddp(irc)"],
                      bucket_cap_mb=1)


def case_cnn(rank: int, world: int) -> dict[str, Any]:
    torch.manual_seed(0)
    base = CNN()
    gen = torch.Generator().manual_seed(200 + rank)
    batches = [torch.randn(4, 3, 12, 12, generator=gen) for _ in range(STEPS)]
    labels = torch.randint(0, 5, (4,), generator=gen)

    def loss_fn(out: torch.Tensor, batch: Any) -> torch.Tensor:
        return torch.nn.functional.cross_entropy(out, labels)

    eager_model = copy.deepcopy(base)
    result = _ddp_forms(base, batches, loss_fn, ["ddp(irc)"], bucket_cap_mb=25)
    # running statistics: the compiled forward's in-place buffer updates reach the module
    model = copy.deepcopy(base)
    wrapped = DDP(irc.compile(model))
    eager_ddp = DDP(eager_model)
    for x in batches:
        wrapped(x)
        eager_ddp(x)
    result["buffer_diff"] = _max_diff([b for b in eager_model.buffers() if b.is_floating_point()],
                                      [b for b in model.buffers() if b.is_floating_point()])
    return result


def _lm_loss(out: Any, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    logits = out.logits if hasattr(out, "logits") else out[0]
    return torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]),
                                             batch["input_ids"][:, 1:].reshape(-1))


def _lm(name: str, rank: int) -> tuple[torch.nn.Module, list[dict[str, torch.Tensor]]]:
    from tests.zoo.models import ZOO
    model, _ = ZOO[name].make(seed=0)
    model.train()
    config = model.config
    for attr in ("attn_pdrop", "resid_pdrop", "embd_pdrop", "attention_dropout", "hidden_dropout"):
        if hasattr(config, attr):
            setattr(config, attr, 0.0)
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    gen = torch.Generator().manual_seed(300 + rank)
    batches = [{"input_ids": torch.randint(0, 1000, (2, 16), generator=gen)} for _ in range(STEPS)]
    return model, batches


def case_gpt2(rank: int, world: int) -> dict[str, Any]:
    base, batches = _lm("gpt2", rank)
    return _ddp_forms(base, batches, _lm_loss, ["ddp(irc)"], bucket_cap_mb=25)


def case_fsdp2(rank: int, world: int) -> dict[str, Any]:
    """FSDP2 (fully_shard per transformer block, then the root) on gloo/CPU,
    eager against blocks compiled with irc."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard
    mesh = init_device_mesh("cpu", (world,))
    base, batches = _lm("llama", rank)
    seen = _count_irc_graphs()

    def run(compiled: bool) -> list[float]:
        model = copy.deepcopy(base)
        layers = model.model.layers
        for i in range(len(layers)):
            if compiled:
                layers[i] = irc.compile(layers[i])
            fully_shard(layers[i], mesh=mesh)
        fully_shard(model, mesh=mesh)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
        losses = []
        for batch in batches:
            opt.zero_grad()
            loss = _lm_loss(model(**batch), batch)
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
        return losses

    eager = run(False)
    irc_losses = run(True)
    return {"eager_losses": eager, "irc_losses": irc_losses, "irc_graphs": len(seen)}


CASES: dict[str, Callable[[int, int], dict[str, Any]]] = {
    "mlp": case_mlp, "mlp_sequential": case_mlp_sequential, "cnn": case_cnn, "gpt2": case_gpt2,
    "fsdp2": case_fsdp2,
}


def main(argv: list[str]) -> None:
    case, rank, world, port, out = argv[0], int(argv[1]), int(argv[2]), int(argv[3]), argv[4]
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=world, timeout=timedelta(seconds=60))
    try:
        result = CASES[case](rank, world)
        path = f"{out}.{rank}.json"
        with open(path + ".tmp", "w") as f:
            json.dump(result, f)
        os.replace(path + ".tmp", path)
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1:])
