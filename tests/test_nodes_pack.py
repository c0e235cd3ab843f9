"""The node pack as ComfyUI sees it: ids, categories, tooltips, frozen input names, import guards."""
from __future__ import annotations

import subprocess
import sys

import pytest

from kinema.nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS

# Saved workflows refer to node ids, input names and widget order: changing these needs a migration.
FROZEN_INPUTS = {
    "KinemaDiTLoader": ["model_name", "weight_dtype", "attention", "compile", "blocks_on_device", "sparse_dense_from_t",
                        "sparse_dense_layers"],
    "KinemaTextEncoderLoader": ["text_encoder_name", "dtype"],
    "KinemaVAELoader": ["vae_name", "dtype"],
    "KinemaCLIPVisionLoader": ["clip_name", "dtype"],
    "KinemaCLIPVisionEncode": ["clip_vision", "image", "end_image"],
    "KinemaTextEncode": ["text_encoder", "prompt", "negative_prompt", "unload_encoder"],
    "KinemaConditioningFromNative": ["positive", "negative"],
    "KinemaConditioningToNative": ["conditioning"],
    "KinemaEmptyLatent": ["vae", "aspect_ratio", "width", "height", "frames", "seconds", "fps"],
    "KinemaSampler": ["dit", "conditioning", "latent", "seed", "steps", "cfg", "shift", "solver", "denoise",
                      "boundary", "cfg_low_noise", "dit_low_noise", "start_image", "vae", "step_cache", "branch",
                      "long_video", "start_sigma", "end_image", "image_features"],
    "KinemaVAEDecode": ["vae", "samples"],
    "KinemaVAEEncode": ["vae", "images"],
    "KinemaDecodeToVideo": ["vae", "samples", "fps", "filename_prefix", "retime", "crop_width", "crop_height"],
    "KinemaSaveVideo": ["images", "fps", "filename_prefix"],
    "KinemaFrameRate": ["images", "fps_in", "fps_out", "method"],
    "KinemaRetimeSettings": ["fps_out", "method"],
    "KinemaLoRA": ["dit", "lora_name", "strength", "mode"],
    "KinemaStepCache": ["threshold", "start_step", "end_step"],
    "KinemaPoseExtract": ["frame_step", "detect_long_side", "smooth", "max_gap", "images", "video_path",
                          "pose_keypoint", "json_width", "json_height", "save_openpose_json", "person"],
    "KinemaPoseRetarget": ["driving_pose", "reference_pose", "anchor", "symmetric", "reference_joints_only",
                           "motion"],
    "KinemaPoseRender": ["pose", "style", "width", "height", "body", "hands", "face", "background"],
    "KinemaAnimateConditioning": ["dit", "vae", "reference_image", "pose_video", "face_video", "width", "height",
                                  "frames", "clip_vision_output", "background_video", "character_mask"],
    "KinemaVACEConditioning": ["vae", "width", "height", "frames", "strength", "control_video", "control_mask",
                               "reference_image"],
    "KinemaLoadImage": ["image"],
    "KinemaLoadVideo": ["video", "max_frames", "frame_step"],
    "KinemaLongVideoSettings": ["window_frames", "overlap_frames", "blend", "freenoise", "drift_strength",
                                "prompt_schedule", "animate_overlap_frames"],
    "KinemaPromptSchedule": ["text_encoder", "schedule", "fps"],
    "KinemaUpscaleModelLoader": ["model_name"],
    "KinemaLatentUpscale": ["samples", "method", "scale", "vae", "upscale_model"],
}


def _inputs(node_class) -> dict:
    spec = node_class.INPUT_TYPES()
    return {name: entry for section in ("required", "optional") for name, entry in spec.get(section, {}).items()}


def test_every_node_is_registered_with_a_display_name():
    assert sorted(NODE_CLASS_MAPPINGS) == sorted(FROZEN_INPUTS)
    assert sorted(NODE_DISPLAY_NAME_MAPPINGS) == sorted(FROZEN_INPUTS)


@pytest.mark.parametrize("node_id", sorted(FROZEN_INPUTS))
def test_node_declaration(node_id):
    node_class = NODE_CLASS_MAPPINGS[node_id]
    assert node_id.startswith("Kinema") and node_class.CATEGORY.startswith("Kinema/")
    assert list(_inputs(node_class)) == FROZEN_INPUTS[node_id]
    for name, entry in _inputs(node_class).items():
        assert len(entry) == 2 and entry[1].get("tooltip"), f"{node_id}.{name} has no tooltip"
    assert len(node_class.RETURN_NAMES) == len(node_class.RETURN_TYPES) == len(node_class.OUTPUT_TOOLTIPS)
    assert callable(getattr(node_class, node_class.FUNCTION)) and node_class.DESCRIPTION


def test_root_package_loads_the_nodes_only_when_asked():
    code = (
        "import sys, kinema, kinema.core\n"
        "assert 'kinema.nodes' not in sys.modules\n"
        "assert not hasattr(kinema, 'WEB_DIRECTORY')\n"
        "assert 'KinemaSampler' in kinema.NODE_CLASS_MAPPINGS\n"
        "assert kinema.NODE_DISPLAY_NAME_MAPPINGS['KinemaSampler'] == 'Kinema Sampler'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_missing_optional_dependency_disables_only_its_nodes():
    # sys.modules[name] = None makes both `import av` and importlib.util.find_spec('av') see no package.
    code = (
        "import sys, logging\n"
        "logging.basicConfig(level=logging.WARNING, format='%(message)s')\n"
        "sys.modules['av'] = None\n"
        "import kinema\n"
        "names = sorted(kinema.NODE_CLASS_MAPPINGS)\n"
        "print(names)\n"
        "assert 'KinemaDecodeToVideo' not in names and 'KinemaSaveVideo' not in names, names\n"
        "assert {'KinemaSampler', 'KinemaVAEDecode', 'KinemaDiTLoader'} <= set(names), names\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "Kinema: node KinemaSaveVideo is disabled: it needs av (pip install av)" in done.stderr
