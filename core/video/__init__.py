"""Video files: a streaming H.264 writer and a reader for tests and tools."""
from .reader import VideoData, read_frames, read_video
from .writer import VideoWriter, as_fps

__all__ = ["VideoData", "VideoWriter", "as_fps", "read_frames", "read_video"]
