"""NCCL all-reduce timings on the GPUs of one host (only run when there are several).

One process per GPU (``torch.multiprocessing``, spawn), for 2, 4 and 8 GPUs as available; each
message size is warmed up, then timed with CUDA events on rank 0 after a barrier, median of
repeats. Sizes are bytes, as the cost model's message (``tokens x hidden x dtype bytes``).
"""

from __future__ import annotations

import socket
import statistics

import pandas as pd

from sim.calibration.plan import Plan


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, sizes: tuple[int, ...], dtype, warmup: int, repeats: int,
            port: int, queue) -> None:
    import torch
    import torch.distributed as dist

    torch.cuda.set_device(rank)
    dist.init_process_group("nccl", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=world)
    element = torch.tensor([], dtype=dtype).element_size()
    rows = []
    for nbytes in sizes:
        x = torch.randn(max(1, nbytes // element), dtype=dtype, device="cuda")
        for _ in range(warmup):
            dist.all_reduce(x)
        times = []
        for _ in range(repeats):
            dist.barrier()
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            dist.all_reduce(x)
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end) / 1e3)
        rows.append((world, x.numel() * element, statistics.median(times)))
    if rank == 0:
        queue.put(rows)
    dist.barrier()
    dist.destroy_process_group()


def measure_allreduce(plan: Plan, dtype, log) -> pd.DataFrame:
    import torch
    import torch.multiprocessing as mp

    count = torch.cuda.device_count()
    ctx = mp.get_context("spawn")
    rows = []
    for world in (w for w in (2, 4, 8) if w <= count):
        queue = ctx.SimpleQueue()
        mp.start_processes(_worker, args=(world, plan.allreduce_bytes, dtype, plan.warmup,
                                          plan.repeats, _free_port(), queue),
                           nprocs=world, join=True, start_method="spawn")
        rows += queue.get()
        log(f"all-reduce on {world} GPUs: {len(plan.allreduce_bytes)} sizes")
    return pd.DataFrame(rows, columns=["devices", "bytes", "time_s"])
