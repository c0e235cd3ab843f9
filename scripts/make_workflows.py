"""Writes workflows/<name>.json (ComfyUI UI format) and workflows/<name>_api.json (API format)
from one Python description of each example graph, so the two never drift.

    python scripts/make_workflows.py           # (re)write the files
    python scripts/make_workflows.py --check   # exit 1 if a file differs from its source here

Add an example: write a function that builds a Graph and decorate it with @example("name").
Widget order comes from each node's INPUT_TYPES, which is how the front end reads the UI file.
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Union

REPO = Path(__file__).resolve().parent.parent
WORKFLOWS = REPO / "workflows"
WIDGET_TYPES = ("INT", "FLOAT", "STRING", "BOOLEAN")
PACK_ID = "kinema"  # registry id: lets ComfyUI-Manager offer to install missing nodes
NODE_WIDTH, ROW_GAP, COLUMN_GAP, TOP = 340, 40, 60, 100  # layout in canvas pixels
NOTE_WIDTH, GROUP_PAD, GROUP_TITLE, GROUP_COLOR = 460, 10, 50, "#3f789e"


@dataclass(frozen=True)
class Output:
    node_id: int
    index: int


@dataclass
class Node:
    id: int
    class_type: str
    inputs: dict[str, Any]
    title: Optional[str] = None

    def __getitem__(self, index: int) -> Output:
        return Output(self.id, index)


Value = Union[Output, Node, int, float, str, bool]


def _node_classes() -> dict:
    from kinema.nodes import NODE_CLASS_MAPPINGS  # the repository, installed as `kinema` (scripts/bootstrap)

    return NODE_CLASS_MAPPINGS


@dataclass
class Graph:
    classes: dict
    nodes: list[Node] = field(default_factory=list)

    def add(self, class_type: str, title: Optional[str] = None, **inputs: Value) -> Node:
        if class_type not in self.classes:
            raise KeyError(f"unknown node {class_type}; known: {', '.join(sorted(self.classes))}")
        declared = declared_inputs(self.classes[class_type])
        unknown = set(inputs) - set(declared)
        if unknown:
            raise KeyError(f"{class_type} has no input(s) {sorted(unknown)}; it has {list(declared)}")
        for name, (section, kind, options) in declared.items():
            if name not in inputs and is_widget(kind) and "default" in options:
                inputs[name] = options["default"]  # written out (optional widgets too, as the front end exports)
            if name not in inputs and section == "required":
                raise KeyError(f"{class_type}: required input {name!r} not given")
            if name in inputs and is_widget(kind) == isinstance(inputs[name], (Output, Node)):
                raise TypeError(f"{class_type}.{name}: {'a value' if is_widget(kind) else 'a link'} is expected")
        node = Node(len(self.nodes) + 1, class_type,
                    {name: _as_output(inputs[name]) for name in declared if name in inputs}, title)
        self.nodes.append(node)
        return node


def _as_output(value: Value):
    return Output(value.id, 0) if isinstance(value, Node) else value


def declared_inputs(node_class) -> dict[str, tuple[str, Any, dict]]:
    """name -> (section, type or combo list, options) for required and optional inputs, in order."""
    spec = node_class.INPUT_TYPES()
    return {name: (section, entry[0], entry[1] if len(entry) > 1 else {})
            for section in ("required", "optional") for name, entry in spec.get(section, {}).items()}


def is_widget(kind) -> bool:
    return isinstance(kind, list) or kind in WIDGET_TYPES


# ----------------------------------------------------------------------------------------- formats
def to_api(graph: Graph) -> dict:
    api = {}
    for node in graph.nodes:
        inputs = {name: [str(v.node_id), v.index] if isinstance(v, Output) else v for name, v in node.inputs.items()}
        api[str(node.id)] = {"class_type": node.class_type, "inputs": inputs,
                             "_meta": {"title": node.title or node.class_type}}
    return api


def to_ui(graph: Graph, name: str) -> dict:
    """The front end's format, laid out like ComfyUI's templates: a note on the left, then one column and group
    per stage ("Step1 - Load models", ...), download links on every loader."""
    links = []  # [link_id, origin_id, origin_slot, target_id, target_slot, type]
    for node in graph.nodes:
        declared = declared_inputs(graph.classes[node.class_type])
        sockets = [name for name, (_, kind, _) in declared.items() if not is_widget(kind)]
        for slot, socket in enumerate(sockets):
            value = node.inputs.get(socket)
            if isinstance(value, Output):  # typed by the output: an input may take several ("A,B")
                origin = graph.classes[graph.nodes[value.node_id - 1].class_type]
                links.append([len(links) + 1, value.node_id, value.index, node.id, slot,
                              origin.RETURN_TYPES[value.index]])
    stages = [stage for stage in STAGES if any(stage_of(n.class_type) == stage for n in graph.nodes)]
    heights: dict[str, int] = {}
    ui_nodes = []
    for order, node in enumerate(graph.nodes):
        node_class = graph.classes[node.class_type]
        declared = declared_inputs(node_class)
        sockets = [name for name, (_, kind, _) in declared.items() if not is_widget(kind)]
        widgets = _widget_values(node, declared)
        size = [NODE_WIDTH, _height(node_class, declared, len(sockets))]
        stage = stage_of(node.class_type)
        models = _model_links(node)
        ui_nodes.append({
            "id": node.id,
            "type": node.class_type,
            "pos": [_column_x(stages.index(stage)), TOP + heights.get(stage, 0)],
            "size": size,
            "flags": {},
            "order": order,
            "mode": 0,
            "inputs": [{"name": name, "type": declared[name][1],
                        "link": next((l[0] for l in links if l[3] == node.id and l[4] == slot), None)}
                       for slot, name in enumerate(sockets)],
            "outputs": [{"name": name, "type": kind, "slot_index": index,
                         "links": [l[0] for l in links if l[1] == node.id and l[2] == index] or None}
                        for index, (name, kind) in enumerate(zip(_output_names(node_class), node_class.RETURN_TYPES))],
            "properties": {"Node name for S&R": node.class_type, "cnr_id": PACK_ID, **({"models": models} if models
                                                                                       else {})},
            "widgets_values": widgets,
            **({"title": node.title} if node.title else {}),
        })
        heights[stage] = heights.get(stage, 0) + size[1] + ROW_GAP
    groups = [{"id": index + 1, "title": f"Step{index + 1} - {stage}", "color": GROUP_COLOR, "font_size": 24,
               "flags": {}, "bounding": [_column_x(index) - GROUP_PAD, TOP - GROUP_TITLE,
                                         NODE_WIDTH + 2 * GROUP_PAD, heights[stage] - ROW_GAP + GROUP_TITLE + GROUP_PAD]}
              for index, stage in enumerate(stages)]
    note = _note_node(len(graph.nodes) + 1, len(graph.nodes), note_text(graph, name))
    return {
        "last_node_id": note["id"],
        "last_link_id": len(links),
        "nodes": [*ui_nodes, note],
        "links": links,
        "groups": groups,
        "config": {},
        "extra": {"ds": {"scale": 1.0, "offset": [0, 0]}},
        "version": 0.4,
    }


def _column_x(column: int) -> int:
    return 50 + NOTE_WIDTH + COLUMN_GAP + (NODE_WIDTH + COLUMN_GAP) * column


def _note_node(node_id: int, order: int, text: str) -> dict:
    """The front end's own MarkdownNote (no Python class: the API file leaves it out)."""
    return {"id": node_id, "type": "MarkdownNote", "pos": [50, TOP], "size": [NOTE_WIDTH, 40 + 22 * text.count("\n")],
            "flags": {}, "order": order, "mode": 0, "inputs": [], "outputs": [], "properties": {},
            "widgets_values": [text], "color": "#432", "bgcolor": "#653"}


def _widget_values(node: Node, declared: dict) -> list:
    values = []
    for name, (_, kind, options) in declared.items():
        if not is_widget(kind):
            continue
        values.append(node.inputs.get(name, options.get("default")))
        if options.get("control_after_generate"):
            values.append("fixed")  # the front end's extra seed widget: keep the seed as saved
    return values


def _output_names(node_class) -> list[str]:
    return list(getattr(node_class, "RETURN_NAMES", None) or node_class.RETURN_TYPES)


def _height(node_class, declared: dict, sockets: int) -> int:
    rows = max(sockets, len(node_class.RETURN_TYPES))
    widgets = [options for _, kind, options in declared.values() if is_widget(kind)]
    multiline = sum(1 for options in widgets if options.get("multiline"))
    return 30 + 22 * rows + 26 * len(widgets) + 90 * multiline


# ----------------------------------------------------------------------- stages, model links, notes
STAGES = ("Load models", "Prompt", "Inputs", "Video size and settings", "Sample", "Decode and save")
_STAGE_NODES = {
    "Load models": ("KinemaDiTLoader", "KinemaVAELoader", "KinemaTextEncoderLoader", "KinemaCLIPVisionLoader",
                    "KinemaLoRA", "KinemaUpscaleModelLoader"),
    "Prompt": ("KinemaTextEncode", "KinemaPromptSchedule"),
    "Inputs": ("KinemaLoadImage", "KinemaLoadVideo", "KinemaCLIPVisionEncode", "KinemaPoseExtract",
               "KinemaPoseRetarget", "KinemaPoseRender", "KinemaAnimateConditioning", "KinemaVACEConditioning",
               "KinemaVAEEncode"),
    "Video size and settings": ("KinemaEmptyLatent", "KinemaLongVideoSettings", "KinemaStepCache",
                                "KinemaRetimeSettings"),
    "Sample": ("KinemaSampler", "KinemaLatentUpscale"),
    "Decode and save": ("KinemaDecodeToVideo", "KinemaVAEDecode", "KinemaSaveVideo", "KinemaFrameRate"),
}
_STAGE_OF = {node: stage for stage, nodes in _STAGE_NODES.items() for node in nodes}


def stage_of(class_type: str) -> str:
    if class_type not in _STAGE_OF:
        raise KeyError(f"{class_type} has no stage; add it to _STAGE_NODES in scripts/make_workflows.py")
    return _STAGE_OF[class_type]


# The file each loader reads, by its widget; a linked file gets a download link (properties.models).
LOADER_FILE_INPUTS = {"KinemaDiTLoader": "model_name", "KinemaVAELoader": "vae_name",
                      "KinemaTextEncoderLoader": "text_encoder_name", "KinemaCLIPVisionLoader": "clip_name",
                      "KinemaLoRA": "lora_name", "KinemaUpscaleModelLoader": "model_name"}
WAN21, WAN22 = "Wan_2.1_ComfyUI_repackaged", "Wan_2.2_ComfyUI_Repackaged"  # Comfy-Org's repackaged releases
DEMO = None  # shipped in the pack's demo_model/ folder: no download


@dataclass(frozen=True)
class ModelFile:
    repo: Optional[str]  # Comfy-Org repository on Hugging Face; DEMO for the shipped demo files
    folder: str  # ComfyUI models/ subfolder
    size: str  # on disk, about what the weights take in memory


MODEL_FILES = {
    "wan2.1_t2v_1.3B_fp16.safetensors": ModelFile(WAN21, "diffusion_models", "2.8 GB"),
    "wan2.1_t2v_14B_fp8_scaled.safetensors": ModelFile(WAN21, "diffusion_models", "14.3 GB"),
    "wan2.1_i2v_480p_14B_fp16.safetensors": ModelFile(WAN21, "diffusion_models", "32.8 GB"),
    "wan2.1_i2v_720p_14B_fp16.safetensors": ModelFile(WAN21, "diffusion_models", "32.8 GB"),
    "wan2.1_flf2v_720p_14B_fp16.safetensors": ModelFile(WAN21, "diffusion_models", "32.8 GB"),
    "wan2.1_vace_1.3B_fp16.safetensors": ModelFile(WAN21, "diffusion_models", "4.3 GB"),
    "umt5_xxl_fp8_e4m3fn_scaled.safetensors": ModelFile(WAN21, "text_encoders", "6.7 GB"),
    "wan_2.1_vae.safetensors": ModelFile(WAN21, "vae", "254 MB"),
    "clip_vision_h.safetensors": ModelFile(WAN21, "clip_vision", "1.3 GB"),
    "wan2.2_ti2v_5B_fp16.safetensors": ModelFile(WAN22, "diffusion_models", "10.0 GB"),
    "wan2.2_t2v_high_noise_14B_fp8_scaled.safetensors": ModelFile(WAN22, "diffusion_models", "14.3 GB"),
    "wan2.2_t2v_low_noise_14B_fp8_scaled.safetensors": ModelFile(WAN22, "diffusion_models", "14.3 GB"),
    "wan2.2_i2v_high_noise_14B_fp8_scaled.safetensors": ModelFile(WAN22, "diffusion_models", "14.3 GB"),
    "wan2.2_i2v_low_noise_14B_fp8_scaled.safetensors": ModelFile(WAN22, "diffusion_models", "14.3 GB"),
    "wan2.2_animate_14B_bf16.safetensors": ModelFile(WAN22, "diffusion_models", "34.5 GB"),
    "wan2.2_vae.safetensors": ModelFile(WAN22, "vae", "1.4 GB"),
    "wan2.2_t2v_lightx2v_4steps_lora_v1.1_high_noise.safetensors": ModelFile(WAN22, "loras", "1.2 GB"),
    "wan2.2_t2v_lightx2v_4steps_lora_v1.1_low_noise.safetensors": ModelFile(WAN22, "loras", "1.2 GB"),
    "kinema_demo_dit.safetensors": ModelFile(DEMO, "diffusion_models", "7.2 MB"),
    "kinema_demo_vae.safetensors": ModelFile(DEMO, "vae", "2.7 MB"),
    "kinema_demo_umt5.safetensors": ModelFile(DEMO, "text_encoders", "3 MB"),
}


def download_url(name: str, model: ModelFile) -> str:
    return f"https://huggingface.co/Comfy-Org/{model.repo}/resolve/main/split_files/{model.folder}/{name}"


def model_file(name: str) -> ModelFile:
    if name not in MODEL_FILES:
        raise KeyError(f"{name}: no download source; add it to MODEL_FILES in scripts/make_workflows.py")
    return MODEL_FILES[name]


def _model_files(graph: Graph) -> list[str]:
    """The files the graph's loaders read, in node order, each once."""
    names = [node.inputs[LOADER_FILE_INPUTS[node.class_type]] for node in graph.nodes
             if node.class_type in LOADER_FILE_INPUTS]
    return list(dict.fromkeys(names))


def _model_links(node: Node) -> list[dict]:
    """properties.models of a loader: what the front end's Missing Models dialog offers to download."""
    if node.class_type not in LOADER_FILE_INPUTS:
        return []
    name = node.inputs[LOADER_FILE_INPUTS[node.class_type]]
    model = model_file(name)
    return [] if model.repo is DEMO else [{"name": name, "url": download_url(name, model), "directory": model.folder}]


@dataclass(frozen=True)
class RunNote:
    """What a workflow asks of the machine, for its note (sources: the Wan READMEs' tables, our benches)."""
    vram: str
    time: str


_A14B_VRAM = ("two 14.3 GB fp8 experts; Wan2.2's README measures 41 GB peak at 480p and 60 GB at 720p (H100). "
              "On 24 GB cards set blocks_on_device on the DiT loaders to stream blocks from RAM")
_I2V14B_VRAM = ("the fp16 DiT is 32.8 GB (Wan2.1's README: 77 GB peak at 720p, H100); weight_dtype fp8_e4m3fn_fast "
                "(RTX 40xx and newer) halves it, blocks_on_device streams blocks from RAM")
RUN_NOTES = {
    "wan21_t2v_1.3b": RunNote("about 8 GB (Wan2.1's README: 8.2 GB peak at 480p)",
                              "about 3 min on an RTX 4090 (Wan2.1's README: 261 s for 50 steps; this uses 30)"),
    "wan22_ti2v_5b": RunNote("about 23 GB at 1280x704 (Wan2.2's README, RTX 4090)",
                             "about 9 min on an RTX 4090 (Wan2.2's README: 535 s)"),
    "wan22_t2v_a14b": RunNote(_A14B_VRAM, "about 17 min at 720p on an H100 (Wan2.2's README: 1042 s, 40 steps)"),
    "wan22_t2v_a14b_4step_lora": RunNote(_A14B_VRAM + "; the LoRAs add 1.2 GB each",
                                         "about 1-2 min at 720p on an H100 (4 unguided steps instead of 40 guided)"),
    "wan21_i2v_14b_480p": RunNote(_I2V14B_VRAM, "about 6 min on an H200 (LightX2V's baseline: 366 s, 40 steps)"),
    "wan21_i2v_14b_720p": RunNote(_I2V14B_VRAM, "about 25 min on an H100 (Wan2.1's README: 1492 s, 40 steps)"),
    "wan21_flf2v_14b_720p": RunNote(_I2V14B_VRAM, "about 20 min on an H100 (like I2V 720p; 30 steps)"),
    "wan22_i2v_a14b": RunNote(_A14B_VRAM, "about 17 min at 720p on an H100 (like T2V A14B, 40 steps)"),
    "animate_a_photo": RunNote("the bf16 DiT is 34.5 GB: weight_dtype fp8_e4m3fn_fast (RTX 40xx and newer) "
                               "halves it, blocks_on_device streams blocks from RAM", "estimated 8-10 min on an H100 (20 unguided steps, 77 frames)"),
    "vace_pose_control": RunNote("about 10 GB (the 1.3B model plus its VACE branch)",
                                 "estimated 4-5 min on an RTX 4090 (30 guided steps plus the pose branch)"),
    "demo_t2v": RunNote("none: runs on the CPU", "a few seconds on a CPU"),
    "wan21_1.3b_2min_1080p30": RunNote("about 8 GB for the 480p pass; the 1080p refine needs more (set "
                                       "blocks_on_device on 12 GB cards)",
                                       "hours on an RTX 4090 (24 windows per pass, plus the 1080p refine)"),
    "wan21_14b_2min_1080p30": RunNote("the fp8 DiT is 14.3 GB; blocks_on_device streams blocks on 24 GB cards",
                                      "many hours on an H100"),
    "wan22_ti2v_5b_2min_1080p30": RunNote("about 23 GB (Wan2.2's README at 720p); blocks_on_device for less",
                                          "hours on an RTX 4090"),
    "demo_2min_30fps": RunNote("none: runs on the CPU", "about 4 min on 2 CPU cores"),
}


def note_text(graph: Graph, name: str) -> str:
    """The MarkdownNote: the files and their folders, the memory and the time this workflow needs."""
    if name not in RUN_NOTES:
        raise KeyError(f"{name}: no RunNote; add one to RUN_NOTES in scripts/make_workflows.py")
    run = RUN_NOTES[name]
    rows = []
    for file in _model_files(graph):
        model = model_file(file)
        source = "ships with Kinema (demo_model/)" if model.repo is DEMO else f"[download]({download_url(file, model)})"
        rows.append(f"| {file} | models/{model.folder} | {model.size} | {source} |")
    return "\n".join([
        f"## {name}", "",
        "**Model files** (the loaders carry these links: ComfyUI's Missing Models dialog offers them)", "",
        "| file | folder | size | source |", "|---|---|---|---|", *rows, "",
        f"**VRAM**: {run.vram}.", "",
        f"**Time**: {run.time}.", "",
        "Run the steps left to right; the video is written to output/kinema/.",
    ])


# ---------------------------------------------------------------------------------------- examples
EXAMPLES: dict[str, Callable[[Graph], None]] = {}


def example(name: str):
    def register(build: Callable[[Graph], None]):
        EXAMPLES[name] = build
        return build
    return register


PROMPT = ("A red fox trots through fresh snow in a birch forest at sunrise, breath steaming, soft golden light, "
          "slow tracking shot, shallow depth of field, cinematic.")


def _text(g: Graph, prompt: str = PROMPT):
    encoder = g.add("KinemaTextEncoderLoader", text_encoder_name="umt5_xxl_fp8_e4m3fn_scaled.safetensors",
                    dtype="default")
    return g.add("KinemaTextEncode", text_encoder=encoder, prompt=prompt, unload_encoder=True)


@example("wan21_t2v_1.3b")
def wan21_t2v_1_3b(g: Graph) -> None:
    dit = g.add("KinemaDiTLoader", model_name="wan2.1_t2v_1.3B_fp16.safetensors", weight_dtype="default",
                attention="sdpa")
    vae = g.add("KinemaVAELoader", vae_name="wan_2.1_vae.safetensors", dtype="default")
    conditioning = _text(g)
    latent = g.add("KinemaEmptyLatent", vae=vae, aspect_ratio="16:9", width=832, height=480, frames=81,
                   seconds=0.0, fps=16)
    # Wan's README recommends shift 8-12 and guidance 6 for the 1.3B model.
    samples = g.add("KinemaSampler", dit=dit, conditioning=conditioning, latent=latent[0], seed=42, steps=30,
                    cfg=6.0, shift=8.0, solver="unipc", denoise=1.0, boundary=0.0, cfg_low_noise=0.0)
    g.add("KinemaDecodeToVideo", vae=vae, samples=samples, fps=16, filename_prefix="kinema/wan21_t2v_1.3b")


@example("wan22_ti2v_5b")
def wan22_ti2v_5b(g: Graph) -> None:
    dit = g.add("KinemaDiTLoader", model_name="wan2.2_ti2v_5B_fp16.safetensors", weight_dtype="default",
                attention="sdpa")
    vae = g.add("KinemaVAELoader", vae_name="wan2.2_vae.safetensors", dtype="default")
    conditioning = _text(g)
    latent = g.add("KinemaEmptyLatent", vae=vae, aspect_ratio="custom (width x height)", width=1280, height=704,
                   frames=121, seconds=0.0, fps=24)
    # Connect an image to start_image (and this vae to vae) for image-to-video.
    samples = g.add("KinemaSampler", dit=dit, conditioning=conditioning, latent=latent[0], seed=42, steps=30,
                    cfg=5.0, shift=5.0, solver="unipc", denoise=1.0, boundary=0.0, cfg_low_noise=0.0, vae=vae)
    g.add("KinemaDecodeToVideo", vae=vae, samples=samples, fps=24, filename_prefix="kinema/wan22_ti2v_5b")


def _a14b_experts(g: Graph, task: str) -> tuple[Node, Node]:
    """Wan2.2 A14B's two expert DiTs ("t2v" or "i2v"), ComfyUI's fp8 files."""
    return tuple(g.add("KinemaDiTLoader", f"DiT {expert} noise", weight_dtype="default", attention="sdpa",
                       model_name=f"wan2.2_{task}_{expert}_noise_14B_fp8_scaled.safetensors")
                 for expert in ("high", "low"))


@example("wan22_t2v_a14b")
def wan22_t2v_a14b(g: Graph) -> None:
    high, low = _a14b_experts(g, "t2v")
    vae = g.add("KinemaVAELoader", vae_name="wan_2.1_vae.safetensors", dtype="default")
    conditioning = _text(g)
    latent = g.add("KinemaEmptyLatent", vae=vae, aspect_ratio="16:9", width=1280, height=720, frames=81,
                   seconds=0.0, fps=16)
    # Official A14B recipe: 40 steps, shift 12, guidance 4.0 (high noise) / 3.0 (low noise), boundary 0.875.
    samples = g.add("KinemaSampler", dit=high, conditioning=conditioning, latent=latent[0], seed=42, steps=40,
                    cfg=4.0, shift=12.0, solver="unipc", denoise=1.0, boundary=0.875, cfg_low_noise=3.0,
                    dit_low_noise=low)
    g.add("KinemaDecodeToVideo", vae=vae, samples=samples, fps=16, filename_prefix="kinema/wan22_t2v_a14b")


@example("wan22_t2v_a14b_4step_lora")
def wan22_t2v_a14b_4step_lora(g: Graph) -> None:
    high, low = _a14b_experts(g, "t2v")
    # lightx2v's 4-step distillation: each expert gets its own LoRA (on the fly over fp8 weights in 'auto').
    high = g.add("KinemaLoRA", "LoRA high noise", dit=high, strength=1.0, mode="auto",
                 lora_name="wan2.2_t2v_lightx2v_4steps_lora_v1.1_high_noise.safetensors")
    low = g.add("KinemaLoRA", "LoRA low noise", dit=low, strength=1.0, mode="auto",
                lora_name="wan2.2_t2v_lightx2v_4steps_lora_v1.1_low_noise.safetensors")
    vae = g.add("KinemaVAELoader", vae_name="wan_2.1_vae.safetensors", dtype="default")
    conditioning = _text(g)
    latent = g.add("KinemaEmptyLatent", vae=vae, aspect_ratio="16:9", width=1280, height=720, frames=81,
                   seconds=0.0, fps=16)
    # Distilled: no guidance (cfg 1), 4 euler steps at shift 5 (timesteps 999, 937, 833, 624): boundary 0.875
    # gives the high-noise expert the first 2 steps and the low-noise expert the last 2.
    samples = g.add("KinemaSampler", dit=high, conditioning=conditioning, latent=latent[0], seed=42, steps=4,
                    cfg=1.0, shift=5.0, solver="euler", denoise=1.0, boundary=0.875, cfg_low_noise=1.0,
                    dit_low_noise=low)
    g.add("KinemaDecodeToVideo", vae=vae, samples=samples, fps=16, filename_prefix="kinema/wan22_t2v_a14b_4step_lora")


CLIP_VISION = "clip_vision_h.safetensors"  # ComfyUI's ViT-H/14 file; Wan's open-clip .pth works as well


def _image_features(g: Graph, image: Node, end_image: Optional[Node] = None) -> Node:
    """CLIP ViT-H/14 features of the start image (and the end image): Wan2.1 I2V / FLF2V and Animate read them."""
    clip = g.add("KinemaCLIPVisionLoader", clip_name=CLIP_VISION, dtype="default")
    ends = {} if end_image is None else {"end_image": end_image[0]}
    return g.add("KinemaCLIPVisionEncode", clip_vision=clip, image=image[0], **ends)


I2V_PROMPT = ("The woman in the picture turns toward the camera and smiles, her hair moving in a light breeze, "
              "natural light, gentle handheld camera.")


def _wan21_image_to_video(g: Graph, dit_name: str, width: int, height: int, steps: int, shift: float, prefix: str,
                          end_frame: bool = False) -> None:
    """Wan2.1 I2V-14B / FLF2V: start image (+ end image) -> VAE latents beside the noise, CLIP features as context."""
    dit = g.add("KinemaDiTLoader", model_name=dit_name, weight_dtype="default", attention="sdpa")
    vae = g.add("KinemaVAELoader", vae_name="wan_2.1_vae.safetensors", dtype="default")
    conditioning = _text(g, I2V_PROMPT)
    start = g.add("KinemaLoadImage", "Start image", image="first_frame.png")
    end = g.add("KinemaLoadImage", "End image", image="last_frame.png") if end_frame else None
    features = _image_features(g, start, end)
    latent = g.add("KinemaEmptyLatent", vae=vae, aspect_ratio="16:9", width=width, height=height, frames=81,
                   seconds=0.0, fps=16)
    ends = {} if end is None else {"end_image": end[0]}
    samples = g.add("KinemaSampler", dit=dit, conditioning=conditioning, latent=latent[0], seed=42, steps=steps,
                    cfg=5.0, shift=shift, solver="unipc", denoise=1.0, boundary=0.0, cfg_low_noise=0.0,
                    start_image=start[0], vae=vae, image_features=features, **ends)
    g.add("KinemaDecodeToVideo", vae=vae, samples=samples, fps=16, filename_prefix=prefix)


@example("wan21_i2v_14b_480p")
def wan21_i2v_14b_480p(g: Graph) -> None:
    # Official I2V recipe: 40 steps, guidance 5, shift 3.0 at 832x480.
    _wan21_image_to_video(g, "wan2.1_i2v_480p_14B_fp16.safetensors", 832, 480, 40, 3.0, "kinema/wan21_i2v_14b_480p")


@example("wan21_i2v_14b_720p")
def wan21_i2v_14b_720p(g: Graph) -> None:
    # Official I2V recipe: 40 steps, guidance 5, shift 5.0 at 720p.
    _wan21_image_to_video(g, "wan2.1_i2v_720p_14B_fp16.safetensors", 1280, 720, 40, 5.0, "kinema/wan21_i2v_14b_720p")


@example("wan21_flf2v_14b_720p")
def wan21_flf2v_14b_720p(g: Graph) -> None:
    # Official FLF2V recipe: shift 16, guidance 5 (50 steps; 30 keep most of it).
    _wan21_image_to_video(g, "wan2.1_flf2v_720p_14B_fp16.safetensors", 1280, 720, 30, 16.0,
                          "kinema/wan21_flf2v_14b_720p", end_frame=True)


@example("wan22_i2v_a14b")
def wan22_i2v_a14b(g: Graph) -> None:
    high, low = _a14b_experts(g, "i2v")
    vae = g.add("KinemaVAELoader", vae_name="wan_2.1_vae.safetensors", dtype="default")
    conditioning = _text(g, I2V_PROMPT)
    start = g.add("KinemaLoadImage", "Start image", image="first_frame.png")
    latent = g.add("KinemaEmptyLatent", vae=vae, aspect_ratio="16:9", width=1280, height=720, frames=81,
                   seconds=0.0, fps=16)
    # Official Wan2.2 I2V recipe: 40 steps, shift 5, guidance 3.5 on both experts, boundary 0.9. Wan2.2 reads
    # no CLIP features; connect an image to end_image for a start-to-end clip.
    samples = g.add("KinemaSampler", dit=high, conditioning=conditioning, latent=latent[0], seed=42, steps=40,
                    cfg=3.5, shift=5.0, solver="unipc", denoise=1.0, boundary=0.9, cfg_low_noise=3.5,
                    dit_low_noise=low, start_image=start[0], vae=vae)
    g.add("KinemaDecodeToVideo", vae=vae, samples=samples, fps=16, filename_prefix="kinema/wan22_i2v_a14b")


def _driving_pose(g: Graph, frames: int):
    """The driving video's first `frames` frames and their pose (MediaPipe); returns (video node, pose node)."""
    video = g.add("KinemaLoadVideo", "Driving video", video="driving.mp4", max_frames=frames, frame_step=1)
    pose = g.add("KinemaPoseExtract", "Driving pose", images=video[0], frame_step=1, detect_long_side=960,
                 smooth=True, max_gap=5)
    return video, pose


@example("animate_a_photo")
def animate_a_photo(g: Graph) -> None:
    width, height, frames = 1280, 720, 77  # Wan2.2 Animate's clip: 77 frames at 30 fps
    dit = g.add("KinemaDiTLoader", model_name="wan2.2_animate_14B_bf16.safetensors", weight_dtype="default",
                attention="sdpa")
    vae = g.add("KinemaVAELoader", vae_name="wan_2.1_vae.safetensors", dtype="default")
    conditioning = _text(g, "视频中的人在做动作")  # the official default prompt ("the person in the video moves")
    photo = g.add("KinemaLoadImage", "Character photo", image="character.png")
    video, driving = _driving_pose(g, frames)
    character = g.add("KinemaPoseExtract", "Character pose", images=photo[0], frame_step=1, detect_long_side=960,
                      smooth=False, max_gap=5)
    moved = g.add("KinemaPoseRetarget", driving_pose=driving[0], reference_pose=character[0], anchor="auto",
                  symmetric=True, reference_joints_only=True)
    pose_video = g.add("KinemaPoseRender", "Pose video", pose=moved, style="wan_animate", width=width, height=height,
                       body=True, hands=True, face=False)
    face_video = g.add("KinemaPoseRender", "Face video", pose=driving[0], style="face_crops", width=0, height=0,
                       body=True, hands=True, face=True, background=video[0])
    branch = g.add("KinemaAnimateConditioning", dit=dit, vae=vae, reference_image=photo[0], pose_video=pose_video[0],
                   face_video=face_video[0], width=width, height=height, frames=frames,
                   clip_vision_output=_image_features(g, photo))
    # The branch sets the video's size and length; the empty latent only gives the batch.
    latent = g.add("KinemaEmptyLatent", "Batch (size from the conditioning)", vae=vae, aspect_ratio="16:9",
                   width=width, height=height, frames=frames, seconds=0.0, fps=30)
    # Official Animate recipe: 20 steps, shift 5, no guidance.
    samples = g.add("KinemaSampler", dit=dit, conditioning=conditioning, latent=latent[0], seed=42, steps=20,
                    cfg=1.0, shift=5.0, solver="unipc", denoise=1.0, boundary=0.0, cfg_low_noise=0.0, branch=branch)
    g.add("KinemaDecodeToVideo", vae=vae, samples=samples, fps=30, filename_prefix="kinema/animate_a_photo")


@example("vace_pose_control")
def vace_pose_control(g: Graph) -> None:
    width, height, frames = 832, 480, 81
    dit = g.add("KinemaDiTLoader", model_name="wan2.1_vace_1.3B_fp16.safetensors", weight_dtype="default",
                attention="sdpa")
    vae = g.add("KinemaVAELoader", vae_name="wan_2.1_vae.safetensors", dtype="default")
    conditioning = _text(g, "A dancer in a red dress performs on a sunlit rooftop, city skyline behind her, "
                            "cinematic, smooth motion.")
    video, driving = _driving_pose(g, frames)
    control = g.add("KinemaPoseRender", "Pose video", pose=driving[0], style="openpose", width=width, height=height,
                    body=True, hands=True, face=True)
    reference = g.add("KinemaLoadImage", "Reference image", image="character.png")
    branch = g.add("KinemaVACEConditioning", vae=vae, width=width, height=height, frames=frames, strength=1.0,
                   control_video=control[0], reference_image=reference[0])
    latent = g.add("KinemaEmptyLatent", "Batch (size from the conditioning)", vae=vae, aspect_ratio="16:9",
                   width=width, height=height, frames=frames, seconds=0.0, fps=16)
    # Wan2.1 VACE defaults: shift 16, guidance 5.
    samples = g.add("KinemaSampler", dit=dit, conditioning=conditioning, latent=latent[0], seed=42, steps=30,
                    cfg=5.0, shift=16.0, solver="unipc", denoise=1.0, boundary=0.0, cfg_low_noise=0.0, branch=branch)
    g.add("KinemaDecodeToVideo", vae=vae, samples=samples, fps=16, filename_prefix="kinema/vace_pose_control")


@example("demo_t2v")
def demo_t2v(g: Graph) -> None:
    # The CPU demo model shipped in demo_model/ (use that folder as the models folder): its 64x64 17-frame
    # clips, the settings of `python -m kinema demo` and its empty-caption negative prompt.
    dit = g.add("KinemaDiTLoader", model_name="kinema_demo_dit.safetensors", weight_dtype="default",
                attention="sdpa")
    vae = g.add("KinemaVAELoader", vae_name="kinema_demo_vae.safetensors", dtype="default")
    encoder = g.add("KinemaTextEncoderLoader", text_encoder_name="kinema_demo_umt5.safetensors", dtype="default")
    conditioning = g.add("KinemaTextEncode", text_encoder=encoder, negative_prompt="", unload_encoder=False,
                         prompt="a red circle moving to the right on a blue background")
    latent = g.add("KinemaEmptyLatent", vae=vae, aspect_ratio="custom (width x height)", width=64, height=64,
                   frames=17, seconds=0.0, fps=16)
    samples = g.add("KinemaSampler", dit=dit, conditioning=conditioning, latent=latent[0], seed=0, steps=20,
                    cfg=4.0, shift=2.0, solver="unipc", denoise=1.0, boundary=0.0, cfg_low_noise=0.0)
    g.add("KinemaDecodeToVideo", vae=vae, samples=samples, fps=16, filename_prefix="kinema/demo_t2v")


LONG_PROMPTS = ("0: A red fox trots through fresh snow in a birch forest at sunrise, slow tracking shot, cinematic.\n"
                "40: The fox stops at a frozen stream and sniffs the ice, soft golden light.\n"
                "80: The fox leaps over the stream and runs into the deep forest, camera follows.\n")
DEMO_PROMPTS = ("0: a red circle moving to the right on a blue background\n"
                "40: a yellow star moving down on a blue background\n"
                "80: a green square moving to the left on a blue background\n")


@dataclass(frozen=True)
class LongRecipe:
    """One model's 2-minute 30 fps recipe: base size, frame rate, window and sampler settings."""
    dit: str
    vae: str
    fps: int  # the model's native rate; retimed to 30 fps while writing
    window: int  # video frames per context window (the model's clip length)
    overlap: int
    steps: int
    cfg: float
    shift: float
    width: int = 960  # x2 -> 1920x1088 (latent 68x120, even for the DiT), centre-cropped to 1920x1080
    height: int = 544
    crop: tuple[int, int] = (1920, 1080)  # (0, 0) keeps the upscaled size
    text_encoder: str = "umt5_xxl_fp8_e4m3fn_scaled.safetensors"
    prompt: str = PROMPT
    schedule: str = LONG_PROMPTS
    negative: Optional[str] = None  # None: the node's default (Wan's negative prompt)
    upscale: str = "vae"  # KinemaLatentUpscale method
    refine_sigma: float = 0.5  # where the full-size refine pass starts
    retime: str = "dis_flow"  # KinemaRetimeSettings method (dis_flow needs OpenCV, the interp extra)


def _two_minutes_30fps(g: Graph, r: LongRecipe, prefix: str) -> None:
    """Base pass over context windows -> latent x2 (VAE round trip) -> refine from a sigma -> 30 fps -> crop."""
    dit = g.add("KinemaDiTLoader", model_name=r.dit, weight_dtype="default", attention="sdpa")
    vae = g.add("KinemaVAELoader", vae_name=r.vae, dtype="default")
    encoder = g.add("KinemaTextEncoderLoader", text_encoder_name=r.text_encoder, dtype="default")
    negative = {} if r.negative is None else {"negative_prompt": r.negative}
    # The schedule replaces the positive prompt; this node gives the negative one (and a fallback prompt).
    conditioning = g.add("KinemaTextEncode", text_encoder=encoder, prompt=r.prompt, unload_encoder=False, **negative)
    schedule = g.add("KinemaPromptSchedule", text_encoder=encoder, schedule=r.schedule, fps=r.fps)
    long = g.add("KinemaLongVideoSettings", window_frames=r.window, overlap_frames=r.overlap, blend="pyramid",
                 freenoise=True, drift_strength=0.2, prompt_schedule=schedule)
    latent = g.add("KinemaEmptyLatent", vae=vae, aspect_ratio="custom (width x height)", width=r.width,
                   height=r.height, frames=81, seconds=120.0, fps=r.fps)
    sampler = dict(cfg=r.cfg, shift=r.shift, solver="unipc", denoise=1.0, boundary=0.0, cfg_low_noise=0.0,
                   long_video=long)
    base = g.add("KinemaSampler", "Base sampler", dit=dit, conditioning=conditioning, latent=latent[0], seed=42,
                 steps=r.steps, **sampler)
    big = g.add("KinemaLatentUpscale", samples=base, method=r.upscale, scale="2.0", vae=vae)
    # Refine at full size from a middle sigma: the layout stays, detail is redrawn; a third of the steps suffices.
    refined = g.add("KinemaSampler", "Refine sampler", dit=dit, conditioning=conditioning, latent=big, seed=43,
                    steps=max(4, r.steps // 3), start_sigma=r.refine_sigma, **sampler)
    retime = g.add("KinemaRetimeSettings", fps_out=30.0, method=r.retime)
    g.add("KinemaDecodeToVideo", vae=vae, samples=refined, fps=r.fps, filename_prefix=prefix, retime=retime,
          crop_width=r.crop[0], crop_height=r.crop[1])


@example("wan21_1.3b_2min_1080p30")
def wan21_1_3b_2min(g: Graph) -> None:
    _two_minutes_30fps(g, LongRecipe("wan2.1_t2v_1.3B_fp16.safetensors", "wan_2.1_vae.safetensors", fps=16,
                                     window=81, overlap=28, steps=30, cfg=6.0, shift=8.0),
                       "kinema/wan21_1.3b_2min_1080p30")


@example("wan21_14b_2min_1080p30")
def wan21_14b_2min(g: Graph) -> None:
    _two_minutes_30fps(g, LongRecipe("wan2.1_t2v_14B_fp8_scaled.safetensors", "wan_2.1_vae.safetensors", fps=16,
                                     window=81, overlap=28, steps=30, cfg=5.0, shift=5.0),
                       "kinema/wan21_14b_2min_1080p30")


@example("wan22_ti2v_5b_2min_1080p30")
def wan22_ti2v_5b_2min(g: Graph) -> None:
    # 960x544 is a multiple of 32 (Wan2.2 VAE 16 x DiT patch 2); x2 = latent 68x120 = 1920x1088.
    _two_minutes_30fps(g, LongRecipe("wan2.2_ti2v_5B_fp16.safetensors", "wan2.2_vae.safetensors", fps=24,
                                     window=121, overlap=40, steps=30, cfg=5.0, shift=5.0),
                       "kinema/wan22_ti2v_5b_2min_1080p30")


@example("demo_2min_30fps")
def demo_2min(g: Graph) -> None:
    # The CPU demo model (demo_model/ as the models folder): 64x64 x2 = 128x128 (no crop), its 17-frame clips
    # as windows, its sampler settings (python -m kinema demo) and its empty-caption negative prompt. Latent
    # interpolation and a refine from sigma 0.1 keep the base video best with the demo's small VAE and its
    # DiT trained at 64 px only (python -m bench.latent_upscale). Blended in-betweens need no OpenCV, so the demo
    # runs right after install (dis_flow needs the interp extra).
    _two_minutes_30fps(g, LongRecipe("kinema_demo_dit.safetensors", "kinema_demo_vae.safetensors", fps=16,
                                     window=17, overlap=8, steps=20, cfg=4.0, shift=2.0, width=64, height=64,
                                     crop=(0, 0), text_encoder="kinema_demo_umt5.safetensors",
                                     prompt="a red circle moving to the right on a blue background",
                                     schedule=DEMO_PROMPTS, negative="", upscale="latent", refine_sigma=0.1,
                                     retime="blend"),
                       "kinema/demo_2min_30fps")


# ------------------------------------------------------------------------------------------- files
def render_all() -> dict[str, str]:
    """File name -> exact file text for every example."""
    classes = _node_classes()
    files = {}
    for name, build in EXAMPLES.items():
        graph = Graph(classes)
        build(graph)
        files[f"{name}.json"] = _dump(to_ui(graph, name))
        files[f"{name}_api.json"] = _dump(to_api(graph))
    return files


def _dump(data: dict) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 when a file is out of date")
    args = parser.parse_args(argv)
    stale = []
    for filename, text in render_all().items():
        path = WORKFLOWS / filename
        if path.exists() and path.read_text(encoding="utf-8") == text:
            continue
        stale.append(filename)
        if not args.check:
            WORKFLOWS.mkdir(exist_ok=True)
            path.write_text(text, encoding="utf-8")
    if args.check and stale:
        print(f"out of date: {', '.join(stale)}; run python scripts/make_workflows.py", file=sys.stderr)
        return 1
    print("\n".join(f"wrote workflows/{f}" for f in stale) if stale else "workflows are up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
