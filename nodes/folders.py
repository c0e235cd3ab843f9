"""Inside ComfyUI: the demo model's folders join ComfyUI's model search paths, so the demo workflows run right
after install with nothing copied.

demo_model/ is laid out like ComfyUI's models/ (diffusion_models/, vae/, text_encoders/,
latent_upscale_models/); each of its folders is appended to the paths ComfyUI searches for that kind,
after the user's own folders, so a user's file of the same name wins.
"""
from __future__ import annotations

from pathlib import Path

from . import host

DEMO_MODELS = Path(__file__).resolve().parent.parent / "demo_model"


def register_demo_folders(root: Path = DEMO_MODELS) -> list[str]:
    """Adds root's model folders to ComfyUI's folder_paths; returns the folder names added (none outside ComfyUI)."""
    if not host.in_comfyui() or not root.is_dir():
        return []
    added = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        folder_paths = host._folder_paths(folder.name)  # registers kinds an older ComfyUI lacks, with its extensions
        folder_paths.add_model_folder_path(folder.name, str(folder), is_default=False)
        added.append(folder.name)
    return added
