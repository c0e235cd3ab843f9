"""MODEL both ways: a Kinema DiT as a native ComfyUI `MODEL`, and a native Wan `MODEL` as a velocity model
for Kinema's sampling engine.

Kinema -> native: a Wan model of ComfyUI (comfy.model_base.WAN21 / WAN22: flow sampling with Wan's shift,
Wan's latent format by channel count) whose `diffusion_model` is a thin module with native WanModel's call,
holding the Kinema DiT's layers under the official Wan names. ComfyUI's LoRA key mapping reads those names,
so LoraLoaderModelOnly patches the same tensors KinemaLoRA would; TorchCompileModel compiles the module and
EasyCache wraps its forward (the DIFFUSION_MODEL wrappers run here as in WanModel.forward). The patcher is
the memory wrapper of nodes/host.py, extended with native weight patches.

native -> Kinema: `NativeWanVelocity` calls a native model's diffusion_model the way the engine calls a
Kinema DiT, `dit(x, t, context, y=..., clip_fea=...)`, on the same normalised latents (a native Wan model's
latent format is Kinema's normalisation), so long video, context windows and the step cache run on models
from UNETLoader or other packs' loaders (e.g. ComfyUI-GGUF).
"""
from __future__ import annotations

import functools
import weakref
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn as nn

from . import host
from .types import DiTModel

_WEIGHTS = "_kinema_native_weights"  # WanDiT attribute: the native weight patches applied now (see _Patched)


# =============================================================================== Kinema DiT -> MODEL
def to_native_model(dit: DiTModel):
    """A native MODEL (a ModelPatcher) around the Kinema DiT; it shares the DiT's weights and memory handle."""
    from .memory import handle_of

    model = _native_wan(dit.model)
    residency = handle_of(dit.model)
    residency = getattr(residency, "residency", residency)
    # shared with the DiT's own handle: whichever the manager unloads, native patches come off first
    residency.__dict__.setdefault("before_unload", []).append(functools.partial(restore_weights, dit.model))
    patcher = native_patcher_class()(model, residency.device, torch.device("cpu"), residency=residency,
                                     name=f"{dit.name} (MODEL)")
    return patcher


def _native_wan(dit: nn.Module):
    """comfy.model_base.WAN21 (16 latent channels) or WAN22 (48) holding `dit` as its diffusion_model."""
    supported, model_base = host._comfy("comfy.supported_models"), host._comfy("comfy.model_base")
    c = dit.config
    if c.out_dim not in (16, 48):
        raise ValueError(f"KinemaDiTLoader: this DiT makes {c.out_dim}-channel latents; native ComfyUI's Wan models "
                         "take 16 (Wan2.1 VAE) or 48 (Wan2.2 VAE)")
    wan22 = c.out_dim == 48
    unet_config = {"image_model": "wan2.1", "dim": c.dim, "in_dim": c.in_dim, "out_dim": c.out_dim,
                   "model_type": "i2v" if c.in_dim > c.out_dim else "t2v", "disable_unet_model_creation": True}
    model_config = (supported.WAN22_T2V if wan22 else supported.WAN21_T2V)(unet_config)
    model_config.set_inference_dtype(dit.compute_dtype, None)
    base = model_base.WAN22 if wan22 else model_base.WAN21
    model = _kinema_class(base)(model_config, image_to_video=c.in_dim > c.out_dim, device=None)
    model.diffusion_model = NativeWanForward(dit)
    return model


_CLASSES: dict = {}


def _kinema_class(base):
    """`base` (WAN21 / WAN22) whose every model call first puts the calling patcher's weight patches in place:
    clones of one MODEL (with and without a LoRA) share the DiT's tensors, as native ModelPatchers do."""
    if base not in _CLASSES:
        class KinemaWan(base):
            def _apply_model(self, *args, **kwargs):
                sync = getattr(self.current_patcher, "kinema_sync_weights", None)
                if sync is not None:
                    sync()
                return super()._apply_model(*args, **kwargs)

        KinemaWan.__name__ = f"Kinema{base.__name__}"
        _CLASSES[base] = KinemaWan
    return _CLASSES[base]


class NativeWanForward(nn.Module):
    """The call of native ComfyUI's WanModel over a Kinema WanDiT.

    The DiT's layers are this module's children under their own (official Wan) names, so the MODEL's state
    dict reads `diffusion_model.blocks.0.self_attn.q.weight` as a native Wan model's does; the DiT itself is
    kept outside the module tree so that each tensor is listed once.
    """

    def __init__(self, dit: nn.Module):
        super().__init__()
        for name, child in dit.named_children():
            self.add_module(name, child)
        for name, parameter in dit.named_parameters(recurse=False):
            self.register_parameter(name, parameter)
        object.__setattr__(self, "dit", dit)
        self.dtype = dit.compute_dtype  # what BaseModel casts the latents and text to
        self.patch_size = tuple(dit.config.patch_size)
        self.text_len = dit.config.text_len

    def forward(self, x, timestep, context, clip_fea=None, time_dim_concat=None, transformer_options={}, **kwargs):
        patcher_extension = host._comfy("comfy.patcher_extension")
        wrappers = patcher_extension.get_all_wrappers(patcher_extension.WrappersMP.DIFFUSION_MODEL, transformer_options)
        return patcher_extension.WrapperExecutor.new_class_executor(self._forward, self, wrappers).execute(
            x, timestep, context, clip_fea, time_dim_concat, transformer_options, **kwargs)

    def _forward(self, x, timestep, context, clip_fea=None, time_dim_concat=None, transformer_options={}, **kwargs):
        # x [B, in_dim, T, H, W] (I2V: the mask and image latents already concatenated), timestep [B] or [B, L]
        # on Wan's 0..1000 scale, context [B, L, text_dim] -> velocity [B, out_dim, T, H, W]
        extra = sorted(k for k, v in kwargs.items() if v is not None and k not in ("control", "denoise_mask"))
        if time_dim_concat is not None or extra:
            names = ", ".join(extra + (["time_dim_concat"] if time_dim_concat is not None else []))
            raise ValueError(f"Kinema's MODEL takes text, CLIP image features and I2V latents; it got {names} from a "
                             "native node (Wan VACE / Animate / S2V inputs): use Kinema's sampler for those models.")
        return self.dit(x, self._per_token(timestep, x), context, clip_fea=clip_fea)

    def _per_token(self, timestep: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Native Wan2.2 gives a known first frame its own timestep per latent frame ([B, frames]); the Kinema DiT
        reads one per token ([B, frames * h * w] in patches)."""
        pt, ph, pw = self.patch_size
        frames, tokens = x.shape[2] // pt, (x.shape[2] // pt) * (x.shape[3] // ph) * (x.shape[4] // pw)
        if timestep.ndim == 2 and timestep.shape[1] == frames and frames != tokens:
            return timestep.repeat_interleave(tokens // frames, dim=1)  # [B, frames] -> [B, tokens]
        return timestep


# ------------------------------------------------------------------------------------- weight patches
_PATCHER_CLASS = None


def native_patcher_class():
    """The memory wrapper of nodes/host.py with native weight patches (LoraLoaderModelOnly & co.).

    ModelPatcher patches weights while it loads them layer by layer; Kinema's wrapper moves the DiT through
    its residency instead, so the patches are put in place here: after a load, and before every model call
    (clones share the tensors, and the last one loaded may not be the one sampling). The originals are
    kept as they are (no copy) and put back before the residency unloads (host's `before_unload` hooks),
    or when a Kinema node uses the DiT (`restore_weights`).
    """
    global _PATCHER_CLASS
    if _PATCHER_CLASS is None:
        class KinemaNativePatcher(host.kinema_patcher_class()):
            def partially_load(self, device_to, extra_memory=0, force_patch_weights=False):
                moved = super().partially_load(device_to, extra_memory, force_patch_weights)
                self.kinema_sync_weights()
                return moved

            def kinema_sync_weights(self):
                _sync(self)

        _PATCHER_CLASS = KinemaNativePatcher
    return _PATCHER_CLASS


@dataclass
class _Patched:
    """Which patch set the DiT's tensors hold now, and the original tensors they replaced."""

    key: object  # the patcher's patches_uuid
    originals: dict  # state-dict key (diffusion_model.<name>) -> the original Parameter
    model: "weakref.ref"  # the native model whose keys these are


def _sync(patcher) -> None:
    dit = patcher.model.diffusion_model.dit
    wanted = patcher.patches_uuid if patcher.patches else None
    current = dit.__dict__.get(_WEIGHTS)
    if (current.key if current is not None else None) == wanted:
        return
    restore_weights(dit)
    if wanted is None:
        return
    _refuse_unpatchable(dit, patcher.patches)
    utils, lora = host._comfy("comfy.utils"), host._comfy("comfy.lora")
    originals = {}
    try:
        for key, patches in patcher.patches.items():
            original = utils.get_attr(patcher.model, key)
            weight = lora.calculate_weight(patches, original.detach().to(torch.float32, copy=True), key)
            originals[key] = original
            utils.set_attr_param(patcher.model, key, weight.to(original.dtype))
    except BaseException:
        for key, original in originals.items():
            utils.set_attr(patcher.model, key, original)
        raise
    dit.__dict__[_WEIGHTS] = _Patched(wanted, originals, weakref.ref(patcher.model))
    patcher.model.current_weight_patches_uuid = wanted


def restore_weights(dit) -> None:
    """Puts the DiT's own tensors back where a native LoRA (through Kinema's MODEL) replaced them; Kinema's
    nodes call it before they use the DiT, so a LoRA on the MODEL never leaks into the KINEMA_DIT wire."""
    patched = dit.__dict__.pop(_WEIGHTS, None) if hasattr(dit, "__dict__") else None
    if patched is None:
        return
    model = patched.model()
    if model is not None:
        utils = host._comfy("comfy.utils")
        for key, original in patched.originals.items():
            utils.set_attr(model, key, original)
        model.current_weight_patches_uuid = None


def _refuse_unpatchable(dit: nn.Module, patches: dict) -> None:
    """Native patches add to a float weight; fp8-scaled, GGUF and streamed layers would need their dequantised
    weight, which Kinema never materialises: a clear error pointing at KinemaLoRA instead."""
    from ..core.dit.streaming import streamer_of

    how = ("apply the LoRA with KinemaLoRA on the loader's dit output (mode on_the_fly keeps quantised weights "
           "exact) and sample with KinemaSampler, or load a bf16/fp16 file with blocks_on_device left to fit")
    if streamer_of(dit) is not None:
        raise ValueError("native LoRA on Kinema's MODEL: this DiT streams its blocks (blocks_on_device / --lowvram), "
                         f"and streamed weights are not patched in place; {how}")
    for key in patches:
        name = key[len("diffusion_model."):] if key.startswith("diffusion_model.") else key
        owner_name, _, leaf = name.rpartition(".")
        owner = dit.get_submodule(owner_name) if owner_name else dit
        tensor = getattr(owner, leaf, None)
        quantised = getattr(owner, "quant", None) is not None or getattr(owner, "weight_scale", None) is not None
        if leaf == "weight" and (quantised or (tensor is not None and tensor.dtype.itemsize == 1)):
            raise ValueError(f"native LoRA on Kinema's MODEL: {name} is stored quantised (fp8 or GGUF); {how}.")


# =============================================================================== native MODEL -> Kinema
@dataclass(frozen=True)
class NativeWanConfig:
    """What the engine reads of a DiT's config (core.sampling: image mode, expert boundary, token patch,
    CLIP checks), taken from a native WanModel."""

    in_dim: int
    out_dim: int
    patch_size: tuple
    text_len: int
    text_dim: int
    image_dim: Optional[int]  # CLIP width of an image branch (Wan2.1 I2V / FLF2V), else None
    image_tokens: Optional[int]  # FLF2V's 2 x 257, else None
    preset: str = "native"


class NativeWanVelocity:
    """A native Wan MODEL as the engine's velocity model `dit(x, t, context, y=..., clip_fea=...)`.

    x: [B, C, T, H, W] normalised latents (= a native Wan model's process_in of raw latents); t: [B] or per-token
    [B, L] on the 0..1000 scale; context: [B, L, D] or a list of [L_i, D] umT5 rows, zero-padded to text_len as
    Wan and native CLIPTextEncode do; returns the velocity [B, C, T, H, W] in float32.
    """

    def __init__(self, patcher, name: str):
        self.patcher, self.name = patcher, name
        base = patcher.model
        network = getattr(base, "diffusion_model", None)
        if not hasattr(base, "latent_format") or network is None or not hasattr(network, "patch_embedding") \
                or not hasattr(network, "head"):
            raise ValueError(f"KinemaSampler: the MODEL {name!r} is not a Wan model (no patch_embedding/head in its "
                             "diffusion_model); connect a Wan 2.1 / 2.2 model (UNETLoader, a GGUF loader or "
                             "KinemaDiTLoader)")
        if isinstance(network, NativeWanForward):  # Kinema's own MODEL: its DiT config as is
            self.config = network.dit.config
            return
        image = getattr(network, "img_emb", None)
        position = getattr(image, "emb_pos", None)
        self.config = NativeWanConfig(
            in_dim=int(network.in_dim), out_dim=int(network.out_dim), patch_size=tuple(network.patch_size),
            text_len=int(getattr(network, "text_len", 512)), text_dim=int(network.text_dim),
            image_dim=None if image is None else 1280,  # native Wan's image branch reads ViT-H/14 features
            image_tokens=None if position is None else int(position.shape[1]))

    def parameters(self):
        return self.patcher.model.diffusion_model.parameters()

    def load(self) -> None:
        """Onto the device through ComfyUI's manager, weight patches (LoRAs) in place, as before native sampling."""
        host._comfy("comfy.model_management").load_models_gpu([self.patcher])
        sync = getattr(self.patcher, "kinema_sync_weights", None)
        if sync is not None:
            sync()

    def __call__(self, x: torch.Tensor, t, context, *, y: Optional[torch.Tensor] = None,
                 clip_fea: Optional[torch.Tensor] = None, **branch_inputs) -> torch.Tensor:
        if branch_inputs:
            raise ValueError(f"the native MODEL {self.name!r} takes no {', '.join(sorted(branch_inputs))}: Wan VACE / "
                             "Animate inputs need the model from KinemaDiTLoader")
        base = self.patcher.model
        dtype = base.manual_cast_dtype or base.get_dtype()
        device = x.device
        xc = x if y is None else torch.cat([x, y.to(x.dtype)], dim=1)  # [B, in_dim, T, H, W]
        timestep = torch.as_tensor(t, device=device, dtype=torch.float32)
        if timestep.ndim == 0:
            timestep = timestep.expand(x.shape[0])
        text = self._padded_text(context, x.shape[0], device, dtype)  # [B, text_len, text_dim]
        options = self.patcher.model_options.get("transformer_options", {})
        fea = None if clip_fea is None else clip_fea.to(device, dtype)
        out = base.diffusion_model(xc.to(dtype), timestep, context=text, clip_fea=fea, transformer_options=options)
        return out.float()  # [B, out_dim, T, H, W]

    def _padded_text(self, context, batch: int, device, dtype) -> torch.Tensor:
        rows = list(context) if not torch.is_tensor(context) else list(context.unbind(0))
        if len(rows) != batch:
            raise ValueError(f"got {len(rows)} text contexts for a batch of {batch}")
        c = self.config
        padded = torch.zeros(batch, max(c.text_len, max(r.shape[0] for r in rows)), c.text_dim, device=device,
                             dtype=dtype)
        for i, row in enumerate(rows):  # row [L_i, text_dim]
            if row.ndim != 2 or row.shape[1] != c.text_dim:
                raise ValueError(f"text context {i} has shape {tuple(row.shape)}; the MODEL {self.name!r} reads "
                                 f"[L, {c.text_dim}] umT5 rows: encode with the umT5 this model was trained with")
            padded[i, : row.shape[0]] = row.to(device, dtype)
        return padded


def as_dit(model, name: str) -> DiTModel:
    """The sampler's DiT input: a KINEMA_DIT as is (a native LoRA on its MODEL taken off first), a native
    MODEL as a NativeWanVelocity brought onto the device."""
    if isinstance(model, DiTModel):
        restore_weights(model.model)
        return model
    velocity = NativeWanVelocity(model, name)
    velocity.load()
    return DiTModel(velocity, name)
