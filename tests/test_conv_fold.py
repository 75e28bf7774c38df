"""fold-batch-norm: eval batch norm folded into the convolution, against eager PyTorch."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from irc.driver import compile_program
from irc.frontends.capture import export_program
from irc.ir import graph as g
from irc.ir.interpreter import interpret
from irc.passes.pipeline import GRAPH_PIPELINE, run_pipeline


def conv_bn(cin: int, cout: int, groups: int, bias: bool, affine: bool, relu: bool,
            seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    layers: list[torch.nn.Module] = [torch.nn.Conv2d(cin, cout, 3, padding=1, groups=groups,
                                                     bias=bias),
                                     torch.nn.BatchNorm2d(cout, affine=affine)]
    if relu:
        layers.append(torch.nn.ReLU())
    model = torch.nn.Sequential(*layers).eval()
    bn = model[1]
    bn.running_mean.normal_()
    bn.running_var.uniform_(0.3, 3.0)
    if affine:
        bn.weight.data.normal_()
        bn.bias.data.normal_()
    return model


def ops_of(module, cls):
    return [op for op in module.walk() if isinstance(op, cls)]


@settings(max_examples=12, deadline=None)
@given(groups=st.sampled_from([1, 2]), bias=st.booleans(), affine=st.booleans(),
       relu=st.booleans(), seed=st.integers(0, 2**16))
def test_folded_matches_eager(groups, bias, affine, relu, seed):
    model = conv_bn(4, 6, groups, bias, affine, relu, seed)
    x = torch.randn(2, 4, 7, 7)
    program = export_program(model, (x,))
    weights = dict(program.weights)
    run_pipeline(program.module, GRAPH_PIPELINE, weights=weights)
    module = program.module
    assert len(ops_of(module, g.ConvOp)) == 1
    # the whole batch norm is gone: no rsqrt, sub or per-channel mul left
    assert not ops_of(module, g.RsqrtOp) and not ops_of(module, g.SubOp)
    assert not ops_of(module, g.MulOp) and not ops_of(module, g.AddOp)
    (out,) = interpret(module, [x], weights)
    torch.testing.assert_close(out, model(x), rtol=1e-4, atol=1e-4)


def test_large_folded_weight_goes_to_the_store():
    model = conv_bn(64, 128, 1, False, True, False, 0)  # 73728 weights: above constant size
    x = torch.randn(1, 64, 5, 5)
    program = export_program(model, (x,))
    weights = dict(program.weights)
    before = set(weights)
    run_pipeline(program.module, "fold-batch-norm", weights=weights)
    (conv,) = ops_of(program.module, g.ConvOp)
    assert isinstance(conv.weight.owner, g.WeightOp)
    name = conv.weight.owner.sym_name.data
    assert name not in before and name in weights and name.startswith("0.weight")
    assert conv.bias is not None
    (out,) = interpret(program.module, [x], weights)
    torch.testing.assert_close(out, model(x), rtol=1e-4, atol=1e-4)


def test_without_weights_the_runtime_folds_once_per_weight_version():
    model = conv_bn(4, 8, 1, True, True, True, 3)
    x = torch.randn(2, 4, 6, 6)
    program = export_program(model, (x,))
    run_pipeline(program.module, "dce,cse,canonicalize,fold-batch-norm")
    (conv,) = ops_of(program.module, g.ConvOp)  # folded even without the weight values:
    assert [type(u.operation) for u in conv.result.uses] == [g.ReluOp]  # BN computes on weights
    exe = compile_program(program, "cpu", {"cache": {"enabled": False}})
    for _ in range(3):
        (out,) = exe(x)
        torch.testing.assert_close(out, model(x), rtol=1e-4, atol=1e-4)
    assert exe.program.derived_runs == 1
    with torch.no_grad():  # an in-place weight update is seen
        model[1].running_var.mul_(2.0)
    (out,) = exe(x)
    torch.testing.assert_close(out, model(x), rtol=1e-4, atol=1e-4)
    assert exe.program.derived_runs == 2


def test_batch_statistics_are_not_folded():
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(3, 4, 3)

    def train_like(x):
        y = conv(x)
        return (y - y.mean(dim=(0, 2, 3), keepdim=True)) * 2.0

    x = torch.randn(2, 3, 6, 6)
    program = export_program(train_like, (x,))
    weights = dict(program.weights)
    run_pipeline(program.module, GRAPH_PIPELINE, weights=weights)
    assert ops_of(program.module, g.SubOp), "a batch-dependent shift must stay"
    (out,) = interpret(program.module, [x], weights)
    torch.testing.assert_close(out, train_like(x), rtol=1e-4, atol=1e-4)


def test_shared_intermediate_is_not_folded():
    model = conv_bn(3, 4, 1, True, True, False, 1)

    def both(x):
        y = model[0](x)
        return model[1](y), y  # the convolution's own result is needed too

    x = torch.randn(1, 3, 5, 5)
    program = export_program(both, (x,))
    weights = dict(program.weights)
    run_pipeline(program.module, GRAPH_PIPELINE, weights=weights)
    outs = interpret(program.module, [x], weights)
    for o, r in zip(outs, both(x), strict=True):
        torch.testing.assert_close(o, r, rtol=1e-4, atol=1e-4)


def test_irc_compile_conv_net_matches_eager():
    import irc
    torch.manual_seed(5)
    model = torch.nn.Sequential(conv_bn(3, 8, 1, False, True, True, 5),
                                conv_bn(8, 8, 2, False, True, False, 6)).eval()
    x = torch.randn(2, 3, 9, 9)
    compiled = irc.compile(model, options={"cache": {"enabled": False}})
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), model(x), rtol=1e-4, atol=1e-4)
