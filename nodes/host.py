"""Every touch of ComfyUI lives here: model folders, output files, progress, interrupts, memory.

Inside ComfyUI these go to `folder_paths`, `comfy.utils.ProgressBar`, `comfy.model_management`
and the prompt server. Standalone (scripts, `python -m kinema run`, tests) the same calls use
plain folders set by `configure()` or the environment, a tqdm bar and CPU/CUDA.
"""
from __future__ import annotations

import contextlib
import importlib
import logging
import os
import sys
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional, Sequence

import torch

from ..core.progress import Progress

log = logging.getLogger("kinema")

MODEL_EXTENSIONS = (".safetensors", ".sft", ".pth", ".pt", ".bin", ".ckpt")
# ComfyUI still scans these older folder names for the same kind of model.
LEGACY_FOLDERS = {"diffusion_models": ("unet",), "text_encoders": ("clip",)}
MODELS_ENV = "KINEMA_MODELS"  # os.pathsep-separated roots holding diffusion_models/, vae/, ...
OUTPUT_ENV = "KINEMA_OUTPUT"
INPUT_ENV = "KINEMA_INPUT"  # folder of the pictures and videos that load nodes offer
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
VIDEO_EXTENSIONS = (".mp4", ".mov", ".webm", ".mkv", ".avi", ".gif")


def in_comfyui() -> bool:
    """True when ComfyUI itself loaded us.

    ComfyUI imports folder_paths and comfy.model_management before it loads custom nodes; a
    ComfyUI checkout that merely happens to be importable does not make a script a ComfyUI run.
    """
    return "folder_paths" in sys.modules and "comfy.model_management" in sys.modules


def _comfy(module: str):
    return importlib.import_module(module)


# ----------------------------------------------------------------------------- standalone folders
@dataclass(frozen=True)
class StandaloneFolders:
    model_roots: tuple[Path, ...]
    output_dir: Path
    input_dir: Path


def _folders_from_env() -> StandaloneFolders:
    roots = [Path(p) for p in os.environ.get(MODELS_ENV, "").split(os.pathsep) if p]
    return StandaloneFolders(tuple(roots) or (Path("models"),), Path(os.environ.get(OUTPUT_ENV, "output")),
                             Path(os.environ.get(INPUT_ENV, "input")))


_standalone: Optional[StandaloneFolders] = None


def configure(models: Sequence[os.PathLike | str] = (), output: Optional[os.PathLike | str] = None,
              input_dir: Optional[os.PathLike | str] = None) -> None:
    """Sets the standalone model roots, output and input folders (ignored inside ComfyUI)."""
    global _standalone
    base = _folders_from_env()
    _standalone = StandaloneFolders(
        tuple(Path(m) for m in models) or base.model_roots,
        Path(output) if output is not None else base.output_dir,
        Path(input_dir) if input_dir is not None else base.input_dir,
    )


def _folders() -> StandaloneFolders:
    return _standalone if _standalone is not None else _folders_from_env()


def _standalone_dirs(folder: str) -> list[Path]:
    names = (folder, *LEGACY_FOLDERS.get(folder, ()))
    return [root / name for root in _folders().model_roots for name in names]


def _folder_paths(folder: str):
    """ComfyUI's folder_paths, with `folder` added under its models directory when this ComfyUI does not
    know it yet (older versions have no latent_upscale_models), so its loader still lists the files."""
    folder_paths = _comfy("folder_paths")
    if folder not in folder_paths.folder_names_and_paths:
        folder_paths.folder_names_and_paths[folder] = ([os.path.join(folder_paths.models_dir, folder)],
                                                       folder_paths.supported_pt_extensions)
    return folder_paths


def model_files(folder: str, extra_extensions: Sequence[str] = ()) -> list[str]:
    """File names (relative, '/'-separated) offered in a loader's combo for a model folder; files with
    `extra_extensions` (e.g. ".gguf", which ComfyUI does not list for the folder) are offered too."""
    if in_comfyui():
        folder_paths = _folder_paths(folder)
        listed = list(folder_paths.get_filename_list(folder))
        if not extra_extensions:
            return listed
        extra = _files_in([Path(d) for d in folder_paths.get_folder_paths(folder)], extra_extensions)
        return sorted(set(listed) | extra)
    return sorted(_files_in(_standalone_dirs(folder), MODEL_EXTENSIONS + tuple(extra_extensions)))


def _files_in(directories: Sequence[Path], extensions: Sequence[str]) -> set[str]:
    found = set()
    for directory in directories:
        if directory.is_dir():
            for path in directory.rglob("*"):
                if path.suffix.lower() in extensions and path.is_file():
                    found.add(path.relative_to(directory).as_posix())
    return found


def model_path(folder: str, name: str) -> str:
    """Full path of a model file chosen in a loader, or a FileNotFoundError saying where we looked."""
    if in_comfyui():
        folder_paths = _folder_paths(folder)
        path = folder_paths.get_full_path(folder, name)
        searched = folder_paths.get_folder_paths(folder)
    else:
        candidates = [d / name for d in _standalone_dirs(folder)]
        path = next((str(c) for c in candidates if c.is_file()), None)
        searched = [str(d) for d in _standalone_dirs(folder)]
    if path is None:
        raise FileNotFoundError(
            f"model file {name!r} not found in the {folder!r} folders ({', '.join(searched) or 'none'}); "
            f"put it in one of them"
            + ("" if in_comfyui() else f" or point --models / {MODELS_ENV} at a folder holding {folder}/")
        )
    return path


# ------------------------------------------------------------------------------------ input files
def input_directory() -> Path:
    if in_comfyui():
        return Path(_comfy("folder_paths").get_input_directory())
    return _folders().input_dir


def input_files(extensions: Sequence[str]) -> list[str]:
    """Files of the input folder with one of these extensions ('/'-separated, relative), for a load node's combo."""
    root = input_directory()
    if not root.is_dir():
        return []
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*")
                  if p.is_file() and p.suffix.lower() in extensions and not p.name.startswith("."))


def input_path(name: str) -> str:
    """Full path of a file named in a load node: relative to the input folder (ComfyUI's `[input]` style
    annotations understood there), or absolute; a FileNotFoundError says where we looked."""
    if in_comfyui():
        folder_paths = _comfy("folder_paths")
        path = Path(folder_paths.get_annotated_filepath(name))
    else:
        path = Path(os.path.expanduser(name))
        path = path if path.is_absolute() else input_directory() / path
    if not path.is_file() and not path.is_dir():
        raise FileNotFoundError(
            f"input file {name!r} not found (looked for {path}); put it in the input folder {input_directory()}"
            + ("" if in_comfyui() else f" (set it with --input or {INPUT_ENV})") + " or give an absolute path"
        )
    return str(path)


# ----------------------------------------------------------------------------------- output files
@dataclass(frozen=True)
class OutputFile:
    path: Path  # where to write; does not exist yet
    filename: str
    subfolder: str  # relative to the output folder, as ComfyUI's /view expects

    def ui(self) -> dict:
        """The entry ComfyUI's front end and /history use to show and download the file."""
        return {"filename": self.filename, "subfolder": self.subfolder, "type": "output"}


def output_directory() -> Path:
    if in_comfyui():
        return Path(_comfy("folder_paths").get_output_directory())
    return _folders().output_dir


def new_output_file(filename_prefix: str, extension: str) -> OutputFile:
    """A fresh `<prefix>_00001_.<ext>` path in the output folder (ComfyUI's naming); never an existing file."""
    root = output_directory().resolve()
    target = (root / filename_prefix).resolve()
    if root != target and root not in target.parents:
        raise ValueError(
            f"filename_prefix {filename_prefix!r} points outside the output folder {root}; "
            "use a relative prefix such as 'kinema/video'"
        )
    directory, stem = target.parent, target.name
    directory.mkdir(parents=True, exist_ok=True)
    counter = 1 + max((_counter_of(p.name, stem) for p in directory.iterdir()), default=0)
    while True:
        filename = f"{stem}_{counter:05}_.{extension}"
        if not (directory / filename).exists():
            subfolder = "" if directory == root else directory.relative_to(root).as_posix()
            return OutputFile(directory / filename, filename, subfolder)
        counter += 1


def _counter_of(filename: str, stem: str) -> int:
    if not filename.startswith(stem + "_"):
        return 0
    digits = filename[len(stem) + 1 :].split("_")[0]
    return int(digits) if digits.isdigit() else 0


# ------------------------------------------------------------------------------ device and memory
def torch_device() -> torch.device:
    if in_comfyui():
        return _comfy("comfy.model_management").get_torch_device()
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


# Kinema's view of ComfyUI's VRAM modes (comfy.model_management.VRAMState and its command-line flags).
VRAM_MODES = ("normal", "lowvram", "novram", "highvram")


@dataclass(frozen=True)
class DeviceMemory:
    """What the compute device offers Kinema's models now."""

    device: torch.device
    mode: str  # one of VRAM_MODES
    free_bytes: int  # ComfyUI's free-memory estimate (standalone: CUDA's free memory, or available RAM)
    reserved_bytes: int  # kept free for the OS and other programs (--reserve-vram)


def device_memory() -> DeviceMemory:
    device = torch_device()
    if in_comfyui():
        mm = _comfy("comfy.model_management")
        return DeviceMemory(device, _vram_mode(mm), int(mm.get_free_memory(device)), int(mm.extra_reserved_memory()))
    if device.type == "cuda":
        free = torch.cuda.mem_get_info(device)[0] + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
    else:
        import psutil

        free = psutil.virtual_memory().available
    return DeviceMemory(device, "normal", int(free), 0)


def _vram_mode(mm) -> str:
    # The flags count even under --cpu (ComfyUI then reports DISABLED): they ask for streaming.
    args = _comfy("comfy.cli_args").args
    state = getattr(mm.vram_state, "name", "")
    if getattr(args, "novram", False) or state == "NO_VRAM":
        return "novram"
    if getattr(args, "lowvram", False) or state == "LOW_VRAM":
        return "lowvram"
    if state == "HIGH_VRAM":
        return "highvram"
    return "normal"


def make_room(nbytes: int) -> None:
    """Asks for `nbytes` free on the compute device before loading a model there: ComfyUI's manager
    unloads only as many of its models (native or Kinema's) as that takes, least recently used first."""
    if in_comfyui():
        mm = _comfy("comfy.model_management")
        mm.free_memory(nbytes + mm.extra_reserved_memory(), torch_device())
    empty_cache()


def manage(residency, name: str):
    """A handle for one of Kinema's models (a residency of nodes/memory.py): inside ComfyUI a ModelPatcher
    that its model manager loads, lists, evicts and frees like a native model; standalone the residency."""
    if not in_comfyui():
        return residency
    return kinema_patcher_class()(residency.module, residency.device, torch.device("cpu"), residency=residency,
                                  name=name)


def load(handle) -> None:
    """Brings a model onto the device before it runs; inside ComfyUI through its manager, which first makes
    room (unloading other models as needed) and then lists the model as loaded."""
    residency = getattr(handle, "residency", handle)
    if handle is residency:
        residency.load()
        return
    mm = _comfy("comfy.model_management")
    # Listed through any of its handles (the DiT's own, or the native MODEL around it) counts as loaded.
    listed = any(getattr(m.model, "residency", None) is residency for m in mm.current_loaded_models)
    if residency.is_loaded() and listed:
        return  # the usual case within a sampling run: nothing to ask
    mm.load_models_gpu([handle])


def leave_device(handle) -> None:
    """After a text encode or a VAE pass: the model goes home, so sampling gets the memory back."""
    residency = getattr(handle, "residency", handle)
    if residency.device.type != "cpu":
        residency.unload()
        empty_cache()


def kinema_models() -> list[dict]:
    """Kinema's models the manager knows now or knew (alive), for diagnostics: name, bytes on the device,
    whether the manager lists them as loaded; for a streamed DiT the bytes of its blocks on the device and
    how often its kept blocks were copied there (set-up, then once per expert switch)."""
    if not in_comfyui():
        return []
    mm = _comfy("comfy.model_management")
    listed = {id(m.model) for m in mm.current_loaded_models}
    report = []
    for p in list(_PATCHERS):
        streamer = getattr(p.residency, "streamer", None)  # a block-streamed DiT
        report.append({"name": p.kinema_name, "class": type(p.model).__name__, "listed": id(p) in listed,
                       "loaded_bytes": int(p.loaded_size()), "size_bytes": int(p.model_size()),
                       "device": str(p.residency.device),
                       "block_bytes": None if streamer is None else streamer.device_bytes(),
                       "block_onloads": None if streamer is None else streamer.onloads})
    return report


_PATCHER_CLASS = None
_PATCHERS: "weakref.WeakSet" = weakref.WeakSet()


def kinema_patcher_class():
    """comfy.model_patcher.ModelPatcher for a Kinema model, made once ComfyUI is importable.

    The model manager calls partially_load / partially_unload / detach and reads model_size / loaded_size;
    here they move the model through its residency (whole, or a streamed DiT's kept blocks) instead of
    ModelPatcher's per-layer moves, and the sizes are live. The rest of ModelPatcher (options, patches,
    clone) is inherited, so a native MODEL around a Kinema DiT can build on the same class.
    """
    global _PATCHER_CLASS
    if _PATCHER_CLASS is None:
        _PATCHER_CLASS = _make_patcher_class(_comfy("comfy.model_patcher").ModelPatcher)
    return _PATCHER_CLASS


def _make_patcher_class(base):
    class KinemaModelPatcher(base):
        def __init__(self, model, load_device, offload_device, size=0, weight_inplace_update=False, *,
                     residency=None, name: str = ""):
            self.residency, self.kinema_name = residency, name  # before ModelPatcher's __init__ reads the size
            super().__init__(model, load_device, offload_device, size=size, weight_inplace_update=weight_inplace_update)
            _PATCHERS.add(self)

        def model_size(self):
            return self.residency.size() if self.residency is not None else super().model_size()

        def loaded_size(self):
            return self.residency.loaded()

        def current_loaded_device(self):
            return self.load_device if self.residency.is_loaded() else self.offload_device

        def partially_load(self, device_to, extra_memory=0, force_patch_weights=False):
            before = self.residency.loaded()
            self.residency.load()
            return self.residency.loaded() - before

        def partially_unload(self, device_to, memory_to_free=0):
            before = self.residency.loaded()
            self._unload()
            return before - self.residency.loaded()

        def detach(self, unpatch_all=True):
            if unpatch_all:  # False when the patcher is only being dropped (ModelPatcher.__del__)
                self._unload()
            return self.model

        def _unload(self):
            # Whichever handle the manager evicts, tensors swapped in place (a native LoRA on the MODEL around a
            # Kinema DiT, nodes/native_model.py) go back before the residency moves the module home.
            for hook in getattr(self.residency, "before_unload", ()):
                hook()
            self.residency.unload()

        def clone(self):
            clone = super().clone()  # built by ModelPatcher as self.__class__(model, devices, size, ...)
            clone.residency, clone.kinema_name = self.residency, self.kinema_name
            return clone

        def __deepcopy__(self, memo):
            return None  # a copy of the model (LoRAs) gets its own patcher on first use

    return KinemaModelPatcher


def empty_cache() -> None:
    if in_comfyui():
        _comfy("comfy.model_management").soft_empty_cache()
    elif torch.cuda.is_available():
        torch.cuda.empty_cache()


# -------------------------------------------------------------------------- progress and messages
@contextlib.contextmanager
def progress(description: str, total: int) -> Iterator[Progress]:
    """A core Progress for one long loop: ComfyUI's ProgressBar + interrupt, or a tqdm bar."""
    if not in_comfyui():
        from ..core.progress import tqdm_progress

        bar, close = tqdm_progress(description, total)
        try:
            yield bar
        finally:
            close()
        return
    bar = _comfy("comfy.utils").ProgressBar(total)
    previews = _LatentPreviews()
    yield Progress(
        on_step=lambda done, total_, latent: bar.update_absolute(done, total_, previews.image(latent)),
        check_cancel=_comfy("comfy.model_management").throw_exception_if_processing_interrupted,
    )


class _LatentPreviews:
    """Turns a latent `[B,C,T,H,W]` into ComfyUI's preview image, honouring --preview-method."""

    def __init__(self):
        self._previewer = None
        self._channels = None

    def image(self, latent: Optional[torch.Tensor]):
        if latent is None:
            return None
        if latent.shape[1] != self._channels:
            self._channels = latent.shape[1]
            self._previewer = _previewer_for(self._channels)
        if self._previewer is None:
            return None
        return self._previewer.decode_latent_to_preview_image("JPEG", latent.float())


def _previewer_for(channels: int):
    # Wan 2.1 latents have 16 channels, Wan 2.2's 5B VAE 48; ComfyUI holds their RGB factors.
    format_name = {16: "Wan21", 48: "Wan22"}.get(channels)
    try:
        latent_format = getattr(_comfy("comfy.latent_formats"), format_name)()
        return _comfy("latent_preview").get_previewer(torch.device("cpu"), latent_format)
    except (AttributeError, ImportError, TypeError) as error:  # an older ComfyUI: progress without previews
        log.debug("Kinema: no latent preview for %s channels: %s", channels, error)
        return None


def show_text(node_id: Optional[str], text: str) -> None:
    """Shows a short note on the node in the ComfyUI front end (and always logs it)."""
    log.info("Kinema: %s", text)
    if in_comfyui() and node_id is not None:
        server = getattr(_comfy("server").PromptServer, "instance", None)
        if server is not None and hasattr(server, "send_progress_text"):
            server.send_progress_text(text, node_id)
