"""Pure-torch engine: models, checkpoint layouts, sampling, video I/O. Never imports ComfyUI."""
