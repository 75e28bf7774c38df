"""Four small test models with seeded example inputs.

``MODELS`` maps a name to a factory returning ``(model_in_eval_mode, inputs)``.
Every model is small (hidden 64, sequence 16, batch 2) so tests stay fast, and
together they cover what the frontend must import: MLPs, CNNs (strided, padded
and grouped convolutions, batch norm, pooling) and transformer blocks (embedding,
RMSNorm/LayerNorm, rotary embeddings, causal and masked attention, GELU, SiLU).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

HIDDEN = 64
SEQ = 16
BATCH = 2
VOCAB = 100


class MLP(nn.Module):
    """Linear -> ReLU -> Linear -> GELU -> Linear."""

    def __init__(self, d_in: int = HIDDEN, d_hidden: int = 2 * HIDDEN, d_out: int = 10) -> None:
        super().__init__()
        self.fc1 = nn.Linear(d_in, d_hidden)
        self.fc2 = nn.Linear(d_hidden, d_hidden)
        self.fc3 = nn.Linear(d_hidden, d_out)

    def forward(self, x: Tensor) -> Tensor:
        x = torch.relu(self.fc1(x))
        x = F.gelu(self.fc2(x))
        return self.fc3(x)


class _ResidualBlock(nn.Module):
    def __init__(self, channels: int, groups: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, groups=groups, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x: Tensor) -> Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(y + x)


class ResNetCNN(nn.Module):
    """Stem conv (stride 2) + BN + ReLU + maxpool, a grouped residual block,
    a strided conv, adaptive average pooling and a linear classifier."""

    def __init__(self, in_channels: int = 3, width: int = 16, classes: int = 10) -> None:
        super().__init__()
        self.stem = nn.Conv2d(in_channels, width, 3, stride=2, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(width)
        self.pool = nn.MaxPool2d(3, stride=2, padding=1)
        self.block = _ResidualBlock(width, groups=4)
        self.down = nn.Conv2d(width, 2 * width, 3, stride=2, padding=1, dilation=1)
        self.avg = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(2 * width, classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.pool(F.relu(self.bn(self.stem(x))))
        x = self.block(x)
        x = F.relu(self.down(x))
        x = torch.flatten(self.avg(x), 1)
        return self.fc(x)


class RMSNorm(nn.Module):
    """RMSNorm written out as pow / mean / rsqrt."""

    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def _rotate_half(x: Tensor) -> Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


class GPTDecoderBlock(nn.Module):
    """Token embedding, pre-norm RMSNorm, rotary causal self-attention, a
    SiLU-gated MLP and residuals. ``explicit_mask=True`` builds the causal mask
    with ``torch.triu(torch.full(...))`` and passes it as an additive mask
    instead of ``is_causal=True``."""

    def __init__(self, vocab: int = VOCAB, dim: int = HIDDEN, heads: int = 4,
                 max_seq: int = 4 * SEQ, explicit_mask: bool = False) -> None:
        super().__init__()
        self.heads, self.head_dim, self.explicit_mask = heads, dim // heads, explicit_mask
        self.embed = nn.Embedding(vocab, dim)
        self.norm1 = RMSNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.proj = nn.Linear(dim, dim, bias=False)
        self.norm2 = RMSNorm(dim)
        self.gate = nn.Linear(dim, 2 * dim, bias=False)
        self.up = nn.Linear(dim, 2 * dim, bias=False)
        self.down = nn.Linear(2 * dim, dim, bias=False)
        inv_freq = 1.0 / (10000 ** (torch.arange(0, self.head_dim, 2).float() / self.head_dim))
        angles = torch.outer(torch.arange(max_seq).float(), inv_freq)
        angles = torch.cat((angles, angles), dim=-1)
        self.register_buffer("cos", angles.cos(), persistent=False)
        self.register_buffer("sin", angles.sin(), persistent=False)

    def _rope(self, x: Tensor, seq: int) -> Tensor:
        cos, sin = self.cos[:seq], self.sin[:seq]
        return x * cos + _rotate_half(x) * sin

    def forward(self, tokens: Tensor) -> Tensor:
        batch, seq = tokens.shape
        x = self.embed(tokens)
        h = self.norm1(x)
        q, k, v = self.qkv(h).split(self.heads * self.head_dim, dim=-1)
        q, k, v = (t.view(batch, seq, self.heads, self.head_dim).transpose(1, 2) for t in (q, k, v))
        q, k = self._rope(q, seq), self._rope(k, seq)
        if self.explicit_mask:
            mask = torch.triu(torch.full((seq, seq), float("-inf")), diagonal=1)
            att = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        else:
            att = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        att = att.transpose(1, 2).reshape(batch, seq, self.heads * self.head_dim)
        x = x + self.proj(att)
        h = self.norm2(x)
        return x + self.down(F.silu(self.gate(h)) * self.up(h))


class BERTEncoderBlock(nn.Module):
    """Post-norm encoder block: multi-head attention with an additive padding
    mask (masked_fill), dropout (identity in eval), LayerNorm, a GELU MLP (erf
    form) and a second GELU (tanh form) on the output."""

    def __init__(self, dim: int = HIDDEN, heads: int = 4, p_drop: float = 0.1) -> None:
        super().__init__()
        self.heads, self.head_dim = heads, dim // heads
        self.q = nn.Linear(dim, dim)
        self.k = nn.Linear(dim, dim)
        self.v = nn.Linear(dim, dim)
        self.o = nn.Linear(dim, dim)
        self.drop = nn.Dropout(p_drop)
        self.ln1 = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, 4 * dim)
        self.fc2 = nn.Linear(4 * dim, dim)
        self.ln2 = nn.LayerNorm(dim)

    def _split(self, t: Tensor) -> Tensor:
        b, s, _ = t.shape
        return t.view(b, s, self.heads, self.head_dim).permute(0, 2, 1, 3)

    def forward(self, x: Tensor, padding_mask: Tensor) -> Tensor:
        """``padding_mask``: bool ``[batch, seq]``, True where the token is padding."""
        b, s, d = x.shape
        q, k, v = self._split(self.q(x)), self._split(self.k(x)), self._split(self.v(x))
        scores = q @ k.transpose(-2, -1) / math.sqrt(self.head_dim)
        mask = torch.zeros(b, 1, 1, s).masked_fill(padding_mask[:, None, None, :], float("-inf"))
        probs = self.drop(torch.softmax(scores + mask, dim=-1))
        att = (probs @ v).permute(0, 2, 1, 3).reshape(b, s, d)
        x = self.ln1(x + self.drop(self.o(att)))
        h = self.fc2(F.gelu(self.fc1(x)))
        return F.gelu(self.ln2(x + self.drop(h)), approximate="tanh")


# ----------------------------------------------------------------------------
# factories: (model in eval mode, example inputs), seeded


def make_mlp(batch: int = BATCH) -> tuple[nn.Module, tuple[Tensor, ...]]:
    torch.manual_seed(0)
    return MLP().eval(), (torch.randn(batch, HIDDEN),)


def make_resnet_cnn(batch: int = BATCH) -> tuple[nn.Module, tuple[Tensor, ...]]:
    torch.manual_seed(0)
    model = ResNetCNN()
    with torch.no_grad():  # non-trivial running statistics so eval batch norm matters
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
    return model.eval(), (torch.randn(batch, 3, 32, 32),)


def make_gpt_decoder_block(batch: int = BATCH) -> tuple[nn.Module, tuple[Tensor, ...]]:
    torch.manual_seed(0)
    return GPTDecoderBlock().eval(), (torch.randint(0, VOCAB, (batch, SEQ)),)


def make_gpt_decoder_block_masked(batch: int = BATCH) -> tuple[nn.Module, tuple[Tensor, ...]]:
    torch.manual_seed(0)
    return GPTDecoderBlock(explicit_mask=True).eval(), (torch.randint(0, VOCAB, (batch, SEQ)),)


def make_bert_encoder_block(batch: int = BATCH) -> tuple[nn.Module, tuple[Tensor, ...]]:
    torch.manual_seed(0)
    x = torch.randn(batch, SEQ, HIDDEN)
    padding = torch.zeros(batch, SEQ, dtype=torch.bool)
    padding[:, SEQ - 3:] = True  # last three tokens of every sequence are padding
    return BERTEncoderBlock().eval(), (x, padding)


MODELS: dict[str, Callable[[], tuple[nn.Module, tuple[Tensor, ...]]]] = {
    "MLP": make_mlp,
    "ResNetCNN": make_resnet_cnn,
    "GPTDecoderBlock": make_gpt_decoder_block,
    "GPTDecoderBlockMasked": make_gpt_decoder_block_masked,
    "BERTEncoderBlock": make_bert_encoder_block,
}

# factories taking a batch size (for recompile-on-new-shape tests)
BATCHED_FACTORIES: dict[str, Callable[[int], tuple[nn.Module, tuple[Tensor, ...]]]] = {
    "MLP": make_mlp,
    "ResNetCNN": make_resnet_cnn,
    "GPTDecoderBlock": make_gpt_decoder_block,
    "GPTDecoderBlockMasked": make_gpt_decoder_block_masked,
    "BERTEncoderBlock": make_bert_encoder_block,
}
