"""Builds a tiny random-weight Qwen2-VL or Qwen2.5-VL checkpoint on disk (no download): a byte-level BPE tokenizer
trained here with Qwen's special tokens and a ChatML template, a 1-layer hidden-32 model with a 1-block vision
tower of 8-pixel patches, and the image processor's config (mean, std, pixel bounds)."""

from __future__ import annotations

from pathlib import Path

QWEN_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
                 "<|image_pad|>", "<|video_pad|>"]
CHATML = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
          "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
CORPUS = ["Yes", "No", "Yes, it is.", "No, it is not.", "You are a helpful assistant.",
          "Query: what colour is the star? red green blue yellow purple orange",
          "Is there a circle, square, triangle, cross or star? Answer with one option.",
          "<0.0 seconds> <12.5 seconds> <136.0 seconds>", "system user assistant memory tokens segment relevant"]


def build_tokenizer():
    """Byte-level BPE (any text encodes) with Qwen's specials; "Yes" and "No" each end up one token."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    raw = Tokenizer(models.BPE())
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.decoder = decoders.ByteLevel()
    raw.train_from_iterator(CORPUS * 20, trainers.BpeTrainer(
        vocab_size=320, special_tokens=QWEN_SPECIALS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False))
    tok = PreTrainedTokenizerFast(tokenizer_object=raw, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                  additional_special_tokens=QWEN_SPECIALS[1:])
    tok.chat_template = CHATML
    return tok


def save_tiny_qwen(out: Path, family: str = "qwen2_vl", seed: int = 0) -> Path:
    """Write tokenizer, image-processor config and a random Qwen2-VL or Qwen2.5-VL (``family``), the ids of its
    special tokens taken from the tokenizer."""
    import torch
    import transformers
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    tok = build_tokenizer()
    tok.save_pretrained(out)
    Qwen2VLImageProcessorPil(patch_size=8, merge_size=2, temporal_patch_size=2, min_pixels=16 * 16,
                             max_pixels=64 * 64).save_pretrained(out)
    ids = tok.convert_tokens_to_ids
    vision = {"depth": 1, "hidden_size": 32, "num_heads": 2, "patch_size": 8, "spatial_merge_size": 2,
              "temporal_patch_size": 2, "initializer_range": 0.2}
    if family == "qwen2_vl":
        config_cls, model_cls = transformers.Qwen2VLConfig, transformers.Qwen2VLForConditionalGeneration
        vision |= {"embed_dim": 32, "mlp_ratio": 2}
    elif family == "qwen2_5_vl":  # window attention over 2×2 merged tokens, then one full-attention block
        config_cls, model_cls = transformers.Qwen2_5_VLConfig, transformers.Qwen2_5_VLForConditionalGeneration
        vision |= {"intermediate_size": 64, "out_hidden_size": 32, "window_size": 32, "fullatt_block_indexes": [0],
                   "tokens_per_second": 2}
    else:
        raise ValueError(f"unknown family {family!r}")
    cfg = config_cls(
        text_config={"vocab_size": len(tok), "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
                     "num_attention_heads": 2, "num_key_value_heads": 1, "max_position_embeddings": 4096,
                     "rope_scaling": {"type": "mrope", "mrope_section": [2, 3, 3]}, "initializer_range": 0.2,
                     "bos_token_id": None, "eos_token_id": tok.eos_token_id, "pad_token_id": tok.pad_token_id},
        vision_config=vision, image_token_id=ids("<|image_pad|>"), video_token_id=ids("<|video_pad|>"),
        vision_start_token_id=ids("<|vision_start|>"), vision_end_token_id=ids("<|vision_end|>"))
    with torch.random.fork_rng(devices=[]):  # transformers initialises from the global stream: fork and seed it
        torch.manual_seed(seed)
        model = model_cls(cfg)
    model.save_pretrained(out)
    return out
