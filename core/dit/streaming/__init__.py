"""Block streaming: a Wan DiT runs with only some transformer blocks on the compute device; the others
are copied in just before they run (the next one while the current one computes) and released after.

    dit = kinema.load_dit(path, device="cuda", streaming=BlockStreaming(blocks_on_device=20))
    dit = kinema.load_dit(path, device="cuda", streaming=BlockStreaming(device_budget=12 * 10**9))
"""
from .plan import StreamPlan, activation_margin, plan_streaming
from .settings import STORAGES, BlockStreaming
from .setup import load_streamed_dit, stream_blocks, streamer_of
from .streamer import BlockStreamer

__all__ = ["STORAGES", "BlockStreamer", "BlockStreaming", "StreamPlan", "activation_margin", "load_streamed_dit",
           "plan_streaming", "stream_blocks", "streamer_of"]
