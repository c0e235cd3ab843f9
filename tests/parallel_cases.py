"""What each rank of a test world runs (tests/parallel_world.py). Module-level functions in a helper
module, not a test file: spawned processes import them by name."""
from __future__ import annotations

import torch

from tiny_dit import relative_error


def _sparse_schedule():
    """sparse3d self-attention in every layer: 1 x 2 x 2 tiles seeing their neighbours and the first frame."""
    from kinema.kernels.sparse3d import SparseSchedule, SparseWindow

    return SparseSchedule(SparseWindow(tile=(1, 2, 2), window=(1, 1, 1), global_frames=1))


def dit_cases(rank, cases):
    """Every case: the whole model here, then the same call split over the world; errors vs the whole run."""
    from kinema.core.dit import load_dit
    from kinema.core.parallel import ParallelPlan, parallelize, start, unparallelize

    loaded, errors = {}, {}
    for name, path, inputs, plan, sparse in cases:
        dit = loaded.setdefault(path, load_dit(path))
        unparallelize(dit)
        dit.set_attention_policy(_sparse_schedule() if sparse else None)
        kwargs = {k: v for k, v in inputs.items() if v is not None}
        with torch.no_grad():
            whole = dit(**kwargs)
            parallelize(dit, start(ParallelPlan.parse(plan)))
            split = dit(**kwargs)
        errors[name] = relative_error(split, whole)
    return errors


def fsdp_cases(rank, path, inputs):
    """FSDP2 over the world, alone and with Ulysses: (local parameter share, error vs the whole model) each."""
    from kinema.core.dit import load_dit
    from kinema.core.parallel import ParallelPlan, parallelize, start
    from kinema.core.parallel.fsdp import local_parameter_count

    results = {}
    for plan in ("cfg=2,fsdp", "ulysses=2,fsdp"):  # a plain DiT call: both cfg ranks run it whole
        dit = load_dit(path)
        total = local_parameter_count(dit)
        with torch.no_grad():
            whole = dit(**inputs)
            parallelize(dit, start(ParallelPlan.parse(plan)))
            results[plan] = (local_parameter_count(dit) / total, relative_error(dit(**inputs), whole))
    return results


class Cancel:
    """A progress check that stops the run at its n-th call (rank 0's host pressing interrupt)."""

    def __init__(self, at: int):
        self.at, self.calls = at, 0

    def __call__(self):
        from kinema.core.progress import Cancelled

        self.calls += 1
        if self.calls >= self.at:
            raise Cancelled("stop")


def sampling_cases(rank, high_path, low_path, plans, cases, interrupt_at):
    """Every case sampled in one process, then under each plan (plan -> names of its cases):
    {plan: {case: (error, same evaluated steps)}}, plus each plan's interrupt outcome (stopped?, DiT calls)."""
    import torch.distributed as dist

    from kinema.core.cache.step_cache import StepCacheSettings
    from kinema.core.dit import load_dit
    from kinema.core.parallel import ParallelPlan, activated, start
    from kinema.core.progress import Cancelled, Progress
    from kinema.core.sampling.long_video import LongVideoSettings
    from kinema.core.sampling.pipeline import sample
    from kinema.core.sampling.settings import SamplerSettings

    models = {"high": load_dit(high_path), "low": load_dit(low_path)}
    calls = []
    for tag, model in models.items():
        model.register_forward_pre_hook(lambda _m, args, tag=tag: calls.append((tag, float(args[1].max()))))
    g = torch.Generator().manual_seed(3)
    positive, negative = [torch.randn(11, 64, generator=g)], [torch.randn(6, 64, generator=g)]

    def run(case, text=positive, progress=None):
        calls.clear()
        out = sample(models["high"], text, negative, settings=SamplerSettings(**case["settings"]),
                     shape=case.get("shape", (1, 16, 3, 6, 10)),
                     dit_low_noise=models["low"] if case.get("experts") else None,
                     step_cache=StepCacheSettings(**case["cache"]) if "cache" in case else None,
                     long_video=LongVideoSettings(**case["long"]) if "long" in case else None, progress=progress)
        return out, [c for i, c in enumerate(calls) if i == 0 or c != calls[i - 1]]  # evaluated steps, in order

    whole = {name: run(case) for name, case in cases.items()}
    results = {}
    for plan, names in plans.items():
        with activated(start(ParallelPlan.parse(plan))):
            # Ranks other than 0 hold a different prompt: the run must use rank 0's.
            text = positive if dist.get_rank() == 0 else [positive[0] + 1]
            results[plan] = {}
            for name in names:
                out, steps = run(cases[name], text)
                results[plan][name] = (relative_error(out, whole[name][0]), steps == whole[name][1])
            stop = Progress(check_cancel=Cancel(interrupt_at) if dist.get_rank() == 0 else None)
            try:
                run(cases[names[0]], text, stop)
                results[plan]["interrupt"] = (False, len(calls))
            except Cancelled:
                results[plan]["interrupt"] = (True, len(calls))
    return results


def three_rank_cases(rank, path, inputs):
    """Ring over 3 ranks (20 tokens: 7 + 7 + 6), and the messages of the plans that cannot run here."""
    from kinema.core.dit import load_dit
    from kinema.core.parallel import ParallelPlan, parallelize, start

    dit = load_dit(path)
    with torch.no_grad():
        whole = dit(**inputs)
        parallelize(dit, start(ParallelPlan.parse("ring=3")))
        ring_error = relative_error(dit(**inputs), whole)
    messages = {}
    for name, attempt in {
        "heads": lambda: parallelize(load_dit(path), start(ParallelPlan.parse("ulysses=3"))),
        "world": lambda: start(ParallelPlan.parse("ulysses=2")),
        "backend": lambda: parallelize(load_dit(path, attention="sage"), start(ParallelPlan.parse("ring=3"))),
    }.items():
        try:
            attempt()
            messages[name] = None
        except ValueError as error:
            messages[name] = str(error)
    return ring_error, messages


def text_case(rank, encoder_path):
    """The text encoder in a parallel run: only rank 0 runs it, every rank gets its rows. Rank 1's copy
    is altered first, so its own rows would differ. Returns (rows equal rank 0's unaltered ones, model calls)."""
    from kinema.core.parallel import ParallelPlan, activated, start
    from kinema.core.text.loader import load_text_encoder

    encoder = load_text_encoder(encoder_path)
    prompts = ["a red circle moving to the right", "rain"]
    alone = encoder.encode(prompts)
    calls = []
    encoder.model.register_forward_pre_hook(lambda *_: calls.append(1))
    if rank == 1:
        with torch.no_grad():
            encoder.model.token_embedding.weight.add_(1.0)
    with activated(start(ParallelPlan.parse("ulysses=2"))):
        shared = encoder.encode(prompts)
    return all(torch.equal(a, b) for a, b in zip(alone, shared)) and len(alone) == len(shared), len(calls)


def dit_and_text_cases(rank, cases, encoder_path):
    """Both in one world (starting processes is the slow part)."""
    return dit_cases(rank, cases), text_case(rank, encoder_path)
