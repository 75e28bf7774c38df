"""The zoo's models, one factory per architecture, shared by the tests and by
``python -m bench.zoo``.

Each :class:`ZooModel` builds a ``transformers`` model from its config class
(1-2 layers, hidden 64-128, short sequences), in eval mode, with weights drawn
from ``torch.manual_seed(seed)``, and the keyword inputs to call it with.
``default`` marks the representative set that the default test run compiles;
the others are marked slow. ``cuda`` marks the ones that also run through
``target="cuda"`` (the Triton interpreter in CI).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from irc.debug.capture import flat_tensors  # noqa: F401  (re-exported for the tests and bench)

Inputs = dict[str, torch.Tensor]
Factory = Callable[[], tuple[torch.nn.Module, Inputs]]


@dataclass(frozen=True)
class ZooModel:
    """One architecture of the zoo."""

    name: str
    family: str  # decoder | encoder | encoder-decoder | vision | audio
    build: Callable[[], tuple[Any, Any]]  # () -> (config, model class)
    inputs: Callable[[Any, int, int], Inputs]  # (config, batch, seq) -> keyword inputs
    batch: int = 2
    seq: int = 16
    default: bool = False
    cuda: bool = False

    def make(self, seed: int = 0, batch: int | None = None, seq: int | None = None
             ) -> tuple[torch.nn.Module, Inputs]:
        """The model (eval mode, seeded weights) and inputs of the given size."""
        config, cls = self.build()
        torch.manual_seed(seed)
        model = cls(config).eval()
        torch.manual_seed(seed + 1)
        return model, self.inputs(config, batch or self.batch, seq or self.seq)

    def fresh_inputs(self, model: torch.nn.Module, seed: int, batch: int | None = None,
                     seq: int | None = None) -> Inputs:
        """New random inputs of the same shapes as :meth:`make`'s (for ``model``)."""
        torch.manual_seed(seed)
        return self.inputs(getattr(model, "config"), batch or self.batch, seq or self.seq)


def _ids(vocab: int = 1000) -> Callable[[Any, int, int], Inputs]:
    def inputs(config: Any, batch: int, seq: int) -> Inputs:
        return {"input_ids": torch.randint(0, vocab, (batch, seq))}
    return inputs


def _ids_mask(vocab: int = 1000) -> Callable[[Any, int, int], Inputs]:
    """Token ids and a padding mask whose last rows are shorter."""
    def inputs(config: Any, batch: int, seq: int) -> Inputs:
        mask = torch.ones(batch, seq, dtype=torch.long)
        for b in range(1, batch):
            mask[b, seq - 2 * b:] = 0
        return {"input_ids": torch.randint(0, vocab, (batch, seq)), "attention_mask": mask}
    return inputs


def _seq2seq(vocab: int = 1000) -> Callable[[Any, int, int], Inputs]:
    def inputs(config: Any, batch: int, seq: int) -> Inputs:
        return {"input_ids": torch.randint(0, vocab, (batch, seq)),
                "decoder_input_ids": torch.randint(0, vocab, (batch, max(1, seq // 2)))}
    return inputs


def _pixels(size: int, channels: int = 3) -> Callable[[Any, int, int], Inputs]:
    def inputs(config: Any, batch: int, seq: int) -> Inputs:
        return {"pixel_values": torch.randn(batch, channels, size, size)}
    return inputs


def _whisper_inputs(config: Any, batch: int, seq: int) -> Inputs:
    frames = 2 * config.max_source_positions
    return {"input_features": torch.randn(batch, config.num_mel_bins, frames),
            "decoder_input_ids": torch.randint(0, config.vocab_size, (batch, seq // 2))}


def _audio(config: Any, batch: int, seq: int) -> Inputs:
    return {"input_values": torch.randn(batch, 50 * seq)}


def _hf(config_name: str, model_name: str, **kwargs: Any) -> Callable[[], tuple[Any, Any]]:
    def build() -> tuple[Any, Any]:
        import transformers
        config = getattr(transformers, config_name)(**kwargs)
        return config, getattr(transformers, model_name)
    return build


_TINY = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
             intermediate_size=128, vocab_size=1000, max_position_embeddings=128)
_TOKENS = dict(pad_token_id=0, bos_token_id=1, eos_token_id=2)

_ALL: list[ZooModel] = [
    # decoder LMs
    ZooModel("gpt2", "decoder", _hf("GPT2Config", "GPT2LMHeadModel", n_embd=64, n_layer=2, n_head=4,
                                    vocab_size=1000, n_positions=128, **_TOKENS),
             _ids_mask(), default=True, cuda=True),
    ZooModel("llama", "decoder", _hf("LlamaConfig", "LlamaForCausalLM", **_TINY, num_key_value_heads=4,
                                     **_TOKENS), _ids_mask(), default=True, cuda=True),
    ZooModel("mistral", "decoder", _hf("MistralConfig", "MistralForCausalLM", **_TINY,
                                       num_key_value_heads=2, **_TOKENS), _ids()),
    ZooModel("qwen2", "decoder", _hf("Qwen2Config", "Qwen2ForCausalLM", **_TINY, num_key_value_heads=2,
                                     **_TOKENS), _ids_mask()),
    ZooModel("phi", "decoder", _hf("PhiConfig", "PhiForCausalLM", **_TINY, **_TOKENS), _ids()),
    ZooModel("gpt_neox", "decoder", _hf("GPTNeoXConfig", "GPTNeoXForCausalLM", **_TINY, **_TOKENS), _ids()),
    ZooModel("opt", "decoder", _hf("OPTConfig", "OPTForCausalLM", hidden_size=64, num_hidden_layers=2,
                                   num_attention_heads=4, ffn_dim=128, vocab_size=1000,
                                   word_embed_proj_dim=64, max_position_embeddings=128, **_TOKENS),
             _ids_mask()),
    ZooModel("bloom", "decoder", _hf("BloomConfig", "BloomForCausalLM", hidden_size=64, n_layer=2, n_head=4,
                                     vocab_size=1000, **_TOKENS), _ids_mask()),
    ZooModel("falcon", "decoder", _hf("FalconConfig", "FalconForCausalLM", hidden_size=64,
                                      num_hidden_layers=2, num_attention_heads=4, vocab_size=1000,
                                      multi_query=True, new_decoder_architecture=False, **_TOKENS),
             _ids()),
    # encoders
    ZooModel("bert", "encoder", _hf("BertConfig", "BertModel", **_TINY), _ids_mask(), default=True,
             cuda=True),
    ZooModel("roberta", "encoder", _hf("RobertaConfig", "RobertaModel", **_TINY, pad_token_id=1),
             _ids_mask()),
    ZooModel("distilbert", "encoder", _hf("DistilBertConfig", "DistilBertModel", dim=64, n_layers=2,
                                          n_heads=4, hidden_dim=128, vocab_size=1000,
                                          max_position_embeddings=128), _ids_mask()),
    ZooModel("deberta_v2", "encoder", _hf("DebertaV2Config", "DebertaV2Model", **_TINY), _ids_mask()),
    ZooModel("albert", "encoder", _hf("AlbertConfig", "AlbertModel", **_TINY, embedding_size=32),
             _ids_mask()),
    # encoder-decoders
    ZooModel("t5", "encoder-decoder", _hf("T5Config", "T5ForConditionalGeneration", d_model=64, d_ff=128,
                                          num_layers=2, num_decoder_layers=2, num_heads=4, d_kv=16,
                                          vocab_size=1000, decoder_start_token_id=0),
             _seq2seq(), default=True),
    ZooModel("bart", "encoder-decoder", _hf("BartConfig", "BartForConditionalGeneration", d_model=64,
                                            encoder_layers=2, decoder_layers=2,
                                            encoder_attention_heads=4, decoder_attention_heads=4,
                                            encoder_ffn_dim=128, decoder_ffn_dim=128, vocab_size=1000,
                                            max_position_embeddings=128), _seq2seq()),
    ZooModel("whisper", "encoder-decoder", _hf("WhisperConfig", "WhisperForConditionalGeneration",
                                               d_model=64, encoder_layers=2, decoder_layers=2,
                                               encoder_attention_heads=4, decoder_attention_heads=4,
                                               encoder_ffn_dim=128, decoder_ffn_dim=128, vocab_size=1000,
                                               num_mel_bins=16, max_source_positions=32,
                                               max_target_positions=64, pad_token_id=0,
                                               bos_token_id=1, eos_token_id=2,
                                               decoder_start_token_id=1), _whisper_inputs),
    # vision
    ZooModel("vit", "vision", _hf("ViTConfig", "ViTModel", image_size=32, patch_size=8, hidden_size=64,
                                  num_hidden_layers=2, num_attention_heads=4, intermediate_size=128),
             _pixels(32), default=True, cuda=True),
    ZooModel("deit", "vision", _hf("DeiTConfig", "DeiTModel", image_size=32, patch_size=8, hidden_size=64,
                                   num_hidden_layers=2, num_attention_heads=4, intermediate_size=128),
             _pixels(32)),
    ZooModel("swin", "vision", _hf("SwinConfig", "SwinModel", image_size=32, patch_size=4, embed_dim=16,
                                   depths=[1, 1], num_heads=[2, 2], window_size=4), _pixels(32)),
    ZooModel("convnext", "vision", _hf("ConvNextConfig", "ConvNextModel", hidden_sizes=[16, 32, 64, 128],
                                       depths=[1, 1, 1, 1]), _pixels(32)),
    ZooModel("resnet", "vision", _hf("ResNetConfig", "ResNetModel", hidden_sizes=[16, 32, 64, 128],
                                     depths=[1, 1, 1, 1], embedding_size=16), _pixels(32), default=True,
             cuda=True),
    ZooModel("mobilenet_v2", "vision", _hf("MobileNetV2Config", "MobileNetV2Model", image_size=32),
             _pixels(32)),
    ZooModel("segformer", "vision", _hf("SegformerConfig", "SegformerModel", hidden_sizes=[16, 32, 64, 128],
                                        depths=[1, 1, 1, 1], decoder_hidden_size=64), _pixels(32)),
    # audio
    ZooModel("wav2vec2", "audio", _hf("Wav2Vec2Config", "Wav2Vec2Model", hidden_size=64,
                                      num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
                                      conv_dim=(32, 32), conv_stride=(5, 2), conv_kernel=(10, 3),
                                      num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4),
             _audio, default=True),
]

ZOO: dict[str, ZooModel] = {m.name: m for m in _ALL}
