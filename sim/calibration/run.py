"""``llmsim calibrate --device cuda|cpu``: measure, fit, write a calibrated profile.

The datasheet part of the profile comes from ``--base`` or, on a GPU, from the shipped profile
matching the device name; a CPU has no datasheet, so its profile is synthesised from what was
measured (peak = best GEMM FLOP/s, bandwidth = best copy bandwidth; the rest are labelled
assumptions) - enough to simulate with, which is what the CPU path is for: a working profile on
any machine, and the end-to-end test of the pipeline.
"""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
import time
from pathlib import Path
from typing import Callable

import numpy as np

from sim.calibration.build import Built, read_base, write_profile
from sim.calibration.plan import DEFAULT_MODELS, QUICK_MODELS, Plan, make_plan
from sim.cost.table_costs import row_costs
from sim.errors import HardwareError
from sim.hardware.calibration import tables as tbl
from sim.hardware.calibration.schema import DTYPE_BYTES
from sim.models import get_model

# Substrings of torch.cuda.get_device_name() -> shipped profile (first match wins).
GPU_NAMES = (("H200", "h200-sxm"), ("H100 PCIe", "h100-pcie"), ("H100", "h100-sxm"),
             ("B200", "b200"), ("A100-SXM4-80GB", "a100-80g-sxm"), ("A100 80GB", "a100-80g-sxm"),
             ("A100", "a100-40g-sxm"), ("L40S", "l40s"), ("L4", "l4"),
             ("RTX 4090", "rtx-4090"), ("MI300X", "mi300x"))


def calibrate(device: str, out: str | Path, *, dtype: str = "bf16",
              models: list[str] | None = None, quick: bool = False, base: str | None = None,
              threads: int | None = None, plan: Plan | None = None,
              log: Callable[[str], None] = lambda s: None) -> Built:
    """Measure on ``device`` and write the profile ``out`` (tables beside it). ``threads``:
    torch's CPU threads; on ``cpu`` the default is 1, because with several threads a busy
    machine quantises times to scheduler ticks (an OpenMP barrier waits for a descheduled
    thread) and the profile is then noise. One core is a steady, self-consistent device."""
    # the arguments first: a typo is reported whether or not torch is installed
    if device not in ("cuda", "cpu"):
        raise HardwareError(f"--device {device}: expected cuda or cpu")
    if dtype not in DTYPE_BYTES or dtype == "fp8":
        raise HardwareError(f"--dtype {dtype}: expected bf16, fp16 or fp32")
    for name in models or ():
        get_model(name)
    try:
        import torch
    except ImportError:
        raise HardwareError("llmsim calibrate needs torch: pip install 'llmsim[calibrate]'") \
            from None
    if threads is not None and threads < 1:
        raise HardwareError(f"--threads {threads}: expected an integer >= 1")
    previous = torch.get_num_threads()
    if threads is None and device == "cpu":
        threads = 1
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        return _calibrate(device, Path(out), dtype, models, quick, base, plan, log)
    finally:
        torch.set_num_threads(previous)     # process-wide: leave it as found


def _calibrate(device: str, out: Path, dtype: str, models: list[str] | None, quick: bool,
               base: str | None, plan: Plan | None, log: Callable[[str], None]) -> Built:
    import torch

    if device == "cuda" and not torch.cuda.is_available():
        raise HardwareError("--device cuda: torch sees no CUDA device (try --device cpu)")
    if models is None:
        models = [] if device == "cpu" else list(QUICK_MODELS if quick else DEFAULT_MODELS)
    specs = [get_model(name) for name in models]
    plan = plan or make_plan(specs, quick, device)
    env = environment(device)
    if device == "cuda" and base is None:
        base = next((p for key, p in GPU_NAMES if key in env["device_name"]), None)
        if base is None:
            raise HardwareError(f"no shipped profile matches {env['device_name']!r}; pass "
                                "--base NAME_OR_PATH for its datasheet numbers")
    log(f"calibrating {env['device_name']} ({dtype}): {plan.points} points, budget "
        f"{plan.budget_s:.0f} s")
    from sim.calibration.bench import Bench

    started = time.monotonic()
    tables = Bench(device, dtype, plan, log).run()
    env["measure_s"] = f"{time.monotonic() - started:.1f}"
    env["models"] = ", ".join(models) or "(generic shapes only)"
    base_map = read_base(base) if base else cpu_base(tables, Path(out).stem, env, dtype)
    header = (f"Written by `llmsim calibrate --device {device} --dtype {dtype}"
              f"{' --quick' if quick else ''}` on {env['date']}; datasheet numbers from "
              f"{base or 'the measurements (CPU)'}.")
    return write_profile(Path(out), base_map, tables, dtype=dtype,
                         source=f"llmsim calibrate --device {device}", environment=env,
                         header=header)


def environment(device: str) -> dict[str, str]:
    """Device name, driver/torch/CUDA versions, date: recorded in the profile."""
    import torch

    env = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
           "torch": torch.__version__, "host": platform.node(),
           "python": platform.python_version()}
    if device == "cuda":
        env["device_name"] = torch.cuda.get_device_name()
        env["cuda"] = str(torch.version.cuda)
        env["driver"] = _nvidia_driver()
        env["gpus"] = str(torch.cuda.device_count())
    else:
        env["device_name"] = _cpu_name()
        env["threads"] = str(torch.get_num_threads())
    return env


def _nvidia_driver() -> str:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10)
        return out.stdout.strip().splitlines()[0] if out.returncode == 0 else "unknown"
    except (OSError, subprocess.SubprocessError, IndexError):
        return "unknown"


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return "CPU " + line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "CPU " + (platform.processor() or platform.machine())


def cpu_base(tables: tbl.Tables, name: str, env: dict[str, str], dtype: str) -> dict:
    """A profile mapping for a CPU: measured peaks, labelled assumptions for the rest."""
    g, e = tables.gemm, tables.elementwise
    dt = DTYPE_BYTES[dtype]
    flops, _ = row_costs("gemm", g, dt)
    peak = max(float(np.max(flops / g.time_s.to_numpy())) if len(g) else 1e11, 1e9)
    copies = e[e.op == "copy"]
    _, nbytes = row_costs("elementwise", copies, dt)
    bandwidth = float(np.max(nbytes / copies.time_s.to_numpy())) if len(copies) else 1e10
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") if hasattr(os, "sysconf") \
        else 16 * 2**30
    tflops = float(f"{peak / 1e12:.4g}")
    return {
        "name": name, "kind": "gpu", "vendor": "cpu",
        "description": f"{env['device_name']} ({env.get('threads', '?')} threads), measured",
        "compute": {"bf16_tflops": tflops, "fp16_tflops": tflops, "fp8_tflops": tflops,
                    "fp32_tflops": tflops},
        "memory": {"technology": "host DRAM", "capacity_gib": round(ram / 2**30, 1),
                   "bandwidth_gb_s": float(f"{bandwidth / 1e9:.4g}")},
        "interconnect": {"name": "none (one host; assumption)", "bandwidth_gb_s": 10.0,
                         "latency_us": 10.0},
        "pcie": {"generation": 4, "bandwidth_gb_s": 10.0},
        "power": {"tdp_w": 200.0, "idle_w": 50.0},
        "energy": {"pj_per_flop": 1.0, "pj_per_hbm_byte": 100.0},
        "price": {"usd_per_hour": 0.1, "basis": "assumption: a small cloud VM"},
        "efficiency": {"compute": 0.9, "memory": 0.9, "interconnect": 0.8,
                       "kernel_launch_us": 5.0, "iteration_overhead_ms": 0.4},
        "sources": ["llmsim calibrate --device cpu (peak FLOP/s and bandwidth: best measured; "
                    "power, energy, price, links: assumptions)"],
    }
