"""Tiny umT5 text encoders for tests, saved in every file layout users have.

The reference model is transformers' UMT5EncoderModel with a tiny random config; the vocabulary is a
sentencepiece unigram model trained here on a few sentences (with byte fallback, like umT5's), so
nothing is downloaded. `save_tiny_umt5(dir, layout)` writes the same weights as:

- "official_pth":     models_t5_umt5-xxl-enc-bf16.pth with Wan's key names, spiece.model in google/umt5-xxl/
- "comfy":            umt5_xxl_fp16.safetensors with HF key names, vocabulary as a `spiece_model` uint8 tensor
- "comfy_fp8_scaled": umt5_xxl_fp8_e4m3fn_scaled.safetensors: Linear weights fp8 + `scale_weight`, `scaled_fp8` marker
- "hf":               a diffusers-style pipeline folder: text_encoder/{config.json, model.safetensors}
                      (shared.weight and its tied encoder.embed_tokens.weight), tokenizer/{spiece.model, tokenizer.json}
"""
from __future__ import annotations

import functools
import io
import types
from pathlib import Path

import torch

SENTENCES = (
    "A cat walks slowly on the green grass in the warm morning light.",
    "Cinematic aerial shot of a city at night, neon lights reflecting on wet streets.",
    "Un gâteau délicieux sur une table en bois, façade élégante, très détaillé.",
    "一只可爱的小猫在阳光明媚的草地上奔跑，电影质感。",
    "The quick brown fox jumps over the lazy dog while the camera pans left.",
    "Ein Hund läuft über die Straße; Straßenbahn, Regen, Dämmerung.",
)

TINY_DIMS = dict(d_model=32, num_heads=4, d_kv=6, d_ff=40, num_layers=2)  # inner 24 != d_model on purpose
LAYOUTS = ("official_pth", "comfy", "comfy_fp8_scaled", "hf")


@functools.lru_cache(maxsize=1)
def tiny_spiece_bytes() -> bytes:
    """Serialized sentencepiece model with umT5's special ids: pad 0, </s> 1, unk 2, no BOS, byte fallback."""
    import sentencepiece

    writer = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(SENTENCES * 10), model_writer=writer, model_type="unigram", vocab_size=400,
        hard_vocab_limit=False, pad_id=0, eos_id=1, unk_id=2, bos_id=-1, byte_fallback=True,
        character_coverage=1.0, num_threads=1, minloglevel=2,
    )
    return writer.getvalue()


def tiny_spiece_processor():
    import sentencepiece

    return sentencepiece.SentencePieceProcessor(model_proto=tiny_spiece_bytes())


@functools.lru_cache(maxsize=1)
def tiny_reference_model():
    """transformers UMT5EncoderModel, fp32, eval mode, fixed random weights. Do not modify it."""
    from transformers import UMT5Config, UMT5EncoderModel

    config = UMT5Config(
        vocab_size=tiny_spiece_processor().get_piece_size(), feed_forward_proj="gated-gelu",
        relative_attention_num_buckets=32, relative_attention_max_distance=128, layer_norm_epsilon=1e-6,
        dropout_rate=0.0, is_encoder_decoder=False, attn_implementation="eager", **TINY_DIMS,
    )
    torch.manual_seed(1234)
    model = UMT5EncoderModel(config).eval()
    with torch.no_grad():  # HF's init gives near-zero relative biases; make them matter for the test
        for name, p in model.named_parameters():
            p.normal_(0.0, 1.0 if "relative_attention_bias" in name else 0.3)
    return model


def reference_hidden(token_ids: list[list[int]]) -> list[torch.Tensor]:
    """HF's encoder on the prompts as one right-padded batch with an attention mask, trimmed per prompt."""
    length = max(len(ids) for ids in token_ids)
    ids = torch.zeros(len(token_ids), length, dtype=torch.long)
    mask = torch.zeros(len(token_ids), length, dtype=torch.long)
    for row, seq in enumerate(token_ids):
        ids[row, : len(seq)] = torch.tensor(seq)
        mask[row, : len(seq)] = 1
    with torch.no_grad():
        hidden = tiny_reference_model()(input_ids=ids, attention_mask=mask).last_hidden_state
    return [hidden[row, : len(seq)] for row, seq in enumerate(token_ids)]


def hf_state_dict() -> dict[str, torch.Tensor]:
    """HF names, without the tied `encoder.embed_tokens.weight` (ComfyUI files don't have it)."""
    sd = tiny_reference_model().state_dict()
    return {k: v.detach().clone().contiguous() for k, v in sd.items() if not k.startswith("encoder.embed_tokens.")}


def official_state_dict() -> dict[str, torch.Tensor]:
    """Wan's official names, written from an independent table (not Kinema's rename rules)."""
    hf = hf_state_dict()
    out = {"token_embedding.weight": hf["shared.weight"], "norm.weight": hf["encoder.final_layer_norm.weight"]}
    parts = {
        "layer.0.layer_norm": "norm1", "layer.1.layer_norm": "norm2",
        "layer.0.SelfAttention.q": "attn.q", "layer.0.SelfAttention.k": "attn.k",
        "layer.0.SelfAttention.v": "attn.v", "layer.0.SelfAttention.o": "attn.o",
        "layer.0.SelfAttention.relative_attention_bias": "pos_embedding.embedding",
        "layer.1.DenseReluDense.wi_0": "ffn.gate.0", "layer.1.DenseReluDense.wi_1": "ffn.fc1",
        "layer.1.DenseReluDense.wo": "ffn.fc2",
    }
    for i in range(TINY_DIMS["num_layers"]):
        for hf_part, wan_part in parts.items():
            out[f"blocks.{i}.{wan_part}.weight"] = hf[f"encoder.block.{i}.{hf_part}.weight"]
    assert len(out) == len(hf), "official table must cover every HF tensor"
    return out


def tiny_tokenizer_json(path: Path) -> Path:
    """tokenizer.json converted from the tiny spiece model by transformers (as HF repos ship it)."""
    from transformers.convert_slow_tokenizer import T5Converter

    class ByteFallbackT5Converter(T5Converter):
        handle_byte_fallback = True  # umT5's tokenizer.json keeps sentencepiece's byte fallback

    spiece = path.parent / "_tiny_spiece_for_conversion.model"
    spiece.write_bytes(tiny_spiece_bytes())
    processor = tiny_spiece_processor()
    original = types.SimpleNamespace(vocab_file=str(spiece), _extra_ids=0, convert_tokens_to_ids=processor.piece_to_id)
    ByteFallbackT5Converter(original).converted().save(str(path))
    spiece.unlink()
    return path


def _to_scaled_fp8(tensors: dict[str, torch.Tensor], dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """ComfyUI's legacy scaled-fp8 spelling: fp8 Linear weights + float32 `scale_weight`, marker `scaled_fp8`."""
    out: dict[str, torch.Tensor] = {"scaled_fp8": torch.empty(0, dtype=torch.float8_e4m3fn)}
    for key, value in tensors.items():
        is_linear = value.ndim == 2 and (".SelfAttention." in key or ".DenseReluDense." in key) and "relative" not in key
        if is_linear:
            scale = value.abs().max().float() / 448.0
            out[key] = (value.float() / scale).to(torch.float8_e4m3fn)
            out[key[: -len("weight")] + "scale_weight"] = scale.reshape(())
        else:
            out[key] = value.to(dtype)
    return out


def save_tiny_umt5(directory, layout: str = "official_pth", embed_spiece: bool = True,
                   dtype: torch.dtype = torch.float32) -> Path:
    """Writes the tiny reference encoder in `layout` under `directory`; returns the path to load.

    `dtype` is the storage dtype (for "comfy_fp8_scaled": of the tensors that are not fp8).
    `embed_spiece=False` leaves the vocabulary out (to test the missing-tokenizer error).
    """
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    spiece = tiny_spiece_bytes()
    if layout == "official_pth":
        path = directory / "models_t5_umt5-xxl-enc-bf16.pth"
        torch.save({k: v.to(dtype) for k, v in official_state_dict().items()}, path)
        if embed_spiece:
            (directory / "google" / "umt5-xxl").mkdir(parents=True, exist_ok=True)
            (directory / "google" / "umt5-xxl" / "spiece.model").write_bytes(spiece)
        return path
    if layout in ("comfy", "comfy_fp8_scaled"):
        tensors = hf_state_dict()
        if layout == "comfy":
            path, tensors = directory / "umt5_xxl_fp16.safetensors", {k: v.to(dtype) for k, v in tensors.items()}
        else:
            path, tensors = directory / "umt5_xxl_fp8_e4m3fn_scaled.safetensors", _to_scaled_fp8(tensors, dtype)
        if embed_spiece:
            tensors["spiece_model"] = torch.frombuffer(bytearray(spiece), dtype=torch.uint8)
        save_file(tensors, str(path))
        return path
    if layout == "hf":
        model_dir = directory / "text_encoder"
        model_dir.mkdir(parents=True, exist_ok=True)
        tensors = {k: v.to(dtype) for k, v in hf_state_dict().items()}
        tensors["encoder.embed_tokens.weight"] = tensors["shared.weight"].clone()
        save_file(tensors, str(model_dir / "model.safetensors"))
        tiny_reference_model().config.to_json_file(str(model_dir / "config.json"))
        if embed_spiece:
            (directory / "tokenizer").mkdir(exist_ok=True)
            (directory / "tokenizer" / "spiece.model").write_bytes(spiece)
            tiny_tokenizer_json(directory / "tokenizer" / "tokenizer.json")
        return model_dir
    raise ValueError(f"unknown layout {layout!r}; one of {LAYOUTS}")
