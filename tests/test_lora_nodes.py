"""KinemaLoRA and KinemaStepCache nodes: execute() on tiny models from a standalone models folder."""
from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from kinema.core.cache import StepCacheSettings
from kinema.core.dit import load_dit
from kinema.core.lora import LoRALinear, apply_loras, load_lora
from kinema.core.sampling import SamplerSettings, sample
from kinema.nodes import host
from kinema.nodes.lora import KinemaLoRA
from kinema.nodes.step_cache import KinemaStepCache
from kinema.nodes.types import DiTModel
from tiny_dit import make_tiny_diffusers_dit, save_tiny_dit, tiny_inputs
from tiny_lora import block_modules, comfy_lora, musubi_lora, random_patches


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    model = make_tiny_diffusers_dit("t2v", num_layers=1)
    fp32 = load_dit(save_tiny_dit(root / "diffusion_models", "comfy", model=model))
    fp8 = load_dit(save_tiny_dit(root / "fp8", "comfy", dtype="fp8_scaled", model=model))
    (root / "loras").mkdir()
    save_file(comfy_lora(random_patches(model, block_modules(model), seed=1)), str(root / "loras" / "a.safetensors"))
    save_file(musubi_lora(random_patches(model, block_modules(model), alpha=2.0, seed=2)),
              str(root / "loras" / "b.safetensors"))
    i2v = make_tiny_diffusers_dit("i2v_clip", num_layers=1)  # the same block widths, plus image attention
    save_file(comfy_lora(random_patches(i2v, [*block_modules(i2v), "blocks.0.cross_attn.k_img"], seed=3)),
              str(root / "loras" / "i2v.safetensors"))
    save_file({"lora_unet_input_blocks_1_0_emb_layers_1.lora_down.weight": torch.zeros(4, 8)},
              str(root / "loras" / "sdxl.safetensors"))
    host.configure(models=[root])
    yield dict(root=root, model=model, fp32=DiTModel(fp32, "tiny"), fp8=DiTModel(fp8, "tiny fp8"))
    host.configure()


def test_lora_node_lists_the_loras_folder(folder):
    names = KinemaLoRA.INPUT_TYPES()["required"]["lora_name"][0]
    assert names == ["a.safetensors", "b.safetensors", "i2v.safetensors", "sdxl.safetensors"]


def test_chained_lora_nodes_stack_and_leave_the_input_alone(folder):
    base, inputs = folder["fp32"], tiny_inputs(folder["model"])
    before = base.model(**inputs)
    once = KinemaLoRA().apply(base, "a.safetensors", 0.8, "auto")[0]
    twice = KinemaLoRA().apply(once, "b.safetensors", -0.5, "on_the_fly")[0]
    assert twice.name == "tiny + a.safetensors + b.safetensors"
    expected = apply_loras(base.model, [(load_lora(folder["root"] / "loras" / "a.safetensors"), 0.8),
                                        (load_lora(folder["root"] / "loras" / "b.safetensors"), -0.5)], "merge")
    torch.testing.assert_close(twice.model(**inputs), expected(**inputs), rtol=1e-4, atol=1e-4)
    assert torch.equal(base.model(**inputs), before)


def test_auto_mode_keeps_fp8_weights_on_the_fly(folder):
    patched = KinemaLoRA().apply(folder["fp8"], "a.safetensors", 1.0, "auto")[0].model
    q = patched.blocks[0].self_attn.q
    assert isinstance(q, LoRALinear) and q.base.weight.dtype == torch.float8_e4m3fn
    merged = KinemaLoRA().apply(folder["fp32"], "a.safetensors", 1.0, "auto")[0].model
    assert not isinstance(merged.blocks[0].self_attn.q, LoRALinear)


def test_lora_node_applies_what_fits_and_names_the_skipped_layers(folder, caplog):
    with caplog.at_level("INFO", logger="kinema"):
        patched = KinemaLoRA().apply(folder["fp32"], "i2v.safetensors", 1.0, "on_the_fly", unique_id="7")[0].model
    assert "applied 10 patch(es), skipped 1" in caplog.text and "blocks.0.cross_attn.k_img" in caplog.text
    assert isinstance(patched.blocks[0].cross_attn.k, LoRALinear)


def test_lora_node_errors_name_the_file(folder):
    with pytest.raises(FileNotFoundError, match="'missing.safetensors' not found in the 'loras' folders"):
        KinemaLoRA().apply(folder["fp32"], "missing.safetensors", 1.0, "auto")
    with pytest.raises(ValueError, match=r"sdxl\.safetensors: no key matches a known Wan DiT LoRA format"):
        KinemaLoRA().apply(folder["fp32"], "sdxl.safetensors", 1.0, "auto")


class CountingDiT:
    """The DiT, counting the evaluations the sampler asks of it."""

    def __init__(self, dit):
        self.dit, self.config, self.calls = dit, dit.config, 0

    def parameters(self):
        return self.dit.parameters()

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return self.dit(*args, **kwargs)


def test_step_cache_node_feeds_the_sampler(folder):
    settings_node = KinemaStepCache()
    defaults = {name: spec[1]["default"] for name, spec in settings_node.INPUT_TYPES()["required"].items()}
    assert settings_node.settings(**defaults)[0] == StepCacheSettings()
    cache_settings = settings_node.settings(threshold=0.3, start_step=1, end_step=-1)[0]
    sampler = SamplerSettings(steps=6, cfg=4.0, seed=0)
    g = torch.Generator().manual_seed(0)
    positive, negative = [torch.randn(5, 64, generator=g)], [torch.randn(3, 64, generator=g)]
    counting = CountingDiT(folder["fp32"].model)
    sample(counting, positive, negative, settings=sampler, shape=(1, 16, 1, 4, 4), step_cache=cache_settings)
    assert counting.calls < 12, "6 steps x 2 guidance passes: the cache skipped none"
    with pytest.raises(ValueError, match="threshold must be a number in"):
        settings_node.settings(threshold=-1.0, start_step=1, end_step=-1)
