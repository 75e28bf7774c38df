"""How much a weight-quantized model departs from the float one.

:func:`accuracy_report` compiles a causal LM with ``quantize.weights`` and
compares it with the float model in eager PyTorch on random prompts:

* the relative error of the logits (``||q - f|| / ||f||`` over every
  position of every prompt) and the largest error of one prompt;
* top-1 agreement: the fraction of positions whose argmax token is the same;
* greedy generation over ``new_tokens`` tokens: the fraction of generated
  tokens that equal the float model's, and how many tokens the two agree on
  before they first differ.

Perplexity is not reported: the zoo's and the benchmark's models have random
weights, so their perplexity on any text is meaningless (close to the vocab
size for both), and a difference between two meaningless numbers says
nothing. Greedy decoding runs on a fixed-length window (the prompt, then
padding the next tokens overwrite): a causal model's logits at a position do
not depend on later tokens, so one compiled graph serves every step.

    python -m irc.quant_report --zoo llama --bits int4
"""


from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any

import torch

import irc


@dataclass(frozen=True)
class AccuracyReport:
    """Quantized vs float model (see the module docstring)."""

    quantize: str
    logits_rel_error: float
    worst_prompt_rel_error: float
    top1_agreement: float
    greedy_token_agreement: float
    greedy_tokens_before_divergence: float
    prompts: int
    prompt_len: int
    new_tokens: int

    def format(self) -> str:
        return (f"{self.quantize}: logits relative error {self.logits_rel_error:.4f} "
                f"(worst prompt {self.worst_prompt_rel_error:.4f}), "
                f"top-1 agreement {100 * self.top1_agreement:.1f}%, greedy generation "
                f"{100 * self.greedy_token_agreement:.1f}% of {self.new_tokens} tokens equal, "
                f"{self.greedy_tokens_before_divergence:.1f} before the first difference "
                f"({self.prompts} random prompts of {self.prompt_len} tokens; perplexity not "
                f"reported: with random weights it is meaningless)")


def _logits(model: Any, ids: torch.Tensor) -> torch.Tensor:
    out = model(input_ids=ids)
    return (out.logits if hasattr(out, "logits") else out[0]).float()


def _greedy(model: Any, prompt: torch.Tensor, new_tokens: int) -> torch.Tensor:
    """``new_tokens`` greedy tokens after ``prompt`` ``[1, P]``, on a fixed window."""
    p = prompt.shape[1]
    window = torch.zeros(1, p + new_tokens, dtype=prompt.dtype)
    window[:, :p] = prompt
    for i in range(new_tokens):
        logits = _logits(model, window)
        window[0, p + i] = logits[0, p + i - 1].argmax()
    return window[0, p:]


def accuracy_report(model: torch.nn.Module, vocab_size: int, quantize: str = "int8",
                    group_size: int = 0, prompts: int = 4, prompt_len: int = 16,
                    new_tokens: int = 8, target: str = "cpu", seed: int = 0) -> AccuracyReport:
    """Compile ``model`` (a causal LM taking ``input_ids``) with weight
    quantization and compare it with the float model in eager."""
    options = {"quantize.weights": quantize, "quantize.group_size": group_size,
               "cache.enabled": False}
    quantized = irc.compile(model, target=target, options=options)
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, vocab_size, (prompts, prompt_len), generator=gen)
    errors, agree, total = [], 0, 0
    num = den = 0.0
    same_tokens, before = 0, 0.0
    with torch.no_grad():
        for row in ids:
            f = _logits(model, row[None])
            q = _logits(quantized, row[None])
            num += float((q - f).pow(2).sum())
            den += float(f.pow(2).sum())
            errors.append(float((q - f).norm() / f.norm()))
            agree += int((q.argmax(-1) == f.argmax(-1)).sum())
            total += f.shape[0] * f.shape[1]
        for row in ids:
            tf = _greedy(model, row[None], new_tokens)
            tq = _greedy(quantized, row[None], new_tokens)
            equal = (tf == tq)
            same_tokens += int(equal.sum())
            before += int(equal.long().cumprod(0).sum())
    return AccuracyReport(quantize, (num / den) ** 0.5, max(errors), agree / total,
                          same_tokens / (prompts * new_tokens), before / prompts,
                          prompts, prompt_len, new_tokens)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m irc.quant_report", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--zoo", default="llama", help="a decoder of tests/zoo/models.py")
    parser.add_argument("--bits", default="int8", choices=["int8", "int4"])
    parser.add_argument("--group-size", type=int, default=0)
    parser.add_argument("--prompts", type=int, default=4)
    parser.add_argument("--prompt-len", type=int, default=16)
    parser.add_argument("--new-tokens", type=int, default=8)
    args = parser.parse_args(argv)
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from zoo.models import ZOO  # type: ignore[import-not-found]
    model, _ = ZOO[args.zoo].make()
    config: Any = getattr(model, "config")  # a transformers model's (torch types it Tensor | Module)
    report = accuracy_report(model, config.vocab_size, args.bits, args.group_size,
                             args.prompts, args.prompt_len, args.new_tokens)
    print(report.format())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
