"""Run a function on N CPU processes joined by gloo on loopback, under a timeout, and collect what each returns.

    results = run_world(my_case, 2, path)   # my_case(rank, path) -> picklable; a module-level function

Every case of a test file runs in as few worlds as possible: starting processes is the slow part.
"""
from __future__ import annotations

import os
import socket
import tempfile
import traceback
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

HEAVY = os.environ.get("KINEMA_HEAVY") == "1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, folder: str, fn, args) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    try:
        dist.init_process_group("gloo", rank=rank, world_size=world)
        result = fn(rank, *args)
        torch.save({"ok": result}, Path(folder) / f"{rank}.pt")
    except BaseException:
        torch.save({"error": traceback.format_exc()}, Path(folder) / f"{rank}.pt")
        raise
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def run_world(fn, world: int, *args, timeout: float = 240.0) -> list:
    """fn(rank, *args) on `world` processes; returns the list of results, rank order. A rank's exception
    fails the test with its traceback; a hang past `timeout` seconds kills the world and fails."""
    with tempfile.TemporaryDirectory() as folder:
        context = mp.start_processes(_worker, args=(world, free_port(), folder, fn, args), nprocs=world,
                                     join=False, start_method="spawn")
        import time
        deadline = time.monotonic() + timeout
        try:
            while not context.join(timeout=max(0.1, min(2.0, deadline - time.monotonic()))):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the {world}-process world did not finish within {timeout} s (a hang)")
        except (mp.ProcessRaisedException, mp.ProcessExitedException):  # reported below from the rank's own traceback
            pass
        finally:
            for process in context.processes:
                if process.is_alive():
                    process.kill()
        results = []
        for rank in range(world):
            path = Path(folder) / f"{rank}.pt"
            if not path.exists():
                raise AssertionError(f"rank {rank} wrote no result (it died)")
            saved = torch.load(path, weights_only=False)
            if "error" in saved:
                raise AssertionError(f"rank {rank} failed:\n{saved['error']}")
            results.append(saved["ok"])
        return results
