"""Kinema's ComfyUI nodes (classic V1 classes), one module per stage, merged into one mapping.

Node modules import the core lazily inside their execute methods, so loading the pack stays
cheap. A node whose optional package is missing (its `REQUIRES`) is left out with a logged
reason; a stage module that fails to import takes only its own nodes with it.
"""
from __future__ import annotations

import importlib
import importlib.util
import logging

log = logging.getLogger("kinema")

STAGES = (
    "loaders",
    "clip_vision",
    "text_encode",
    "conditioning_bridge",
    "latent",
    "sampler",
    "decode",
    "encode",
    "save_video",
    "pose",
    "interpolate",
    "lora",
    "step_cache",
    "conditioning_pose",
    "load_media",
    "longvideo",
    "upscale",
)

NODE_CLASS_MAPPINGS: dict = {}
NODE_DISPLAY_NAME_MAPPINGS: dict = {}
DISABLED_NODES: dict[str, str] = {}  # node id or stage -> why it is not available


def _missing_packages(node_class) -> list[str]:
    return [name for name in getattr(node_class, "REQUIRES", ()) if importlib.util.find_spec(name) is None]


def _register(stage: str) -> None:
    try:
        module = importlib.import_module(f".{stage}", __name__)
    except ImportError as error:
        DISABLED_NODES[stage] = f"import failed: {error}"
        log.warning("Kinema: the %s nodes are disabled: %s", stage, error)
        return
    for node_id, node_class in module.NODE_CLASS_MAPPINGS.items():
        missing = _missing_packages(node_class)
        if missing:
            DISABLED_NODES[node_id] = f"needs {', '.join(missing)} (pip install {' '.join(missing)})"
            log.warning("Kinema: node %s is disabled: it %s", node_id, DISABLED_NODES[node_id])
            continue
        NODE_CLASS_MAPPINGS[node_id] = node_class
        NODE_DISPLAY_NAME_MAPPINGS[node_id] = module.NODE_DISPLAY_NAME_MAPPINGS[node_id]


for _stage in STAGES:
    _register(_stage)

from .folders import register_demo_folders  # noqa: E402  (after the nodes: their lists are read lazily)

register_demo_folders()
