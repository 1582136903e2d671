"""Hardware profiles: one YAML per device in ``hardware_profiles/``, loaded into a DeviceSpec.

The YAML uses the units of datasheets (TFLOP/s, GiB, GB/s, us, ms, W); :func:`load_device`
validates it against :class:`ProfileFile` (errors name the file and the field) and converts to the
SI units of :class:`~sim.hardware.device.DeviceSpec` (FLOP/s, bytes, bytes/s, seconds).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from sim.hardware.calibration.schema import (CalibrationSection, MeasuredSection,
                                             measured_stamps, table_stamps)
from sim.config import parse, read_text, require
from sim.errors import HardwareError, ScenarioError, did_you_mean
from sim.hardware.device import DeviceSpec, Efficiency
from sim.hardware.duplex import DuplexSection, DuplexSpec, assumptions_of, paper_overlay
from sim.registry import Registry

# The shipped profiles live in the package (the repository's top-level hardware_profiles/ is a
# link to them); a ./hardware_profiles folder where llmsim runs adds profiles or overrides them.
PROFILE_DIR = Path(str(resources.files("sim") / "data" / "hardware_profiles")).resolve()
USER_PROFILE_DIR = Path("hardware_profiles")


def _profile_dirs() -> list[Path]:
    """Where a profile name is looked up: the user's folder (if any) first, then the package's."""
    user = USER_PROFILE_DIR.resolve()
    return [user, PROFILE_DIR] if user.is_dir() and user != PROFILE_DIR else [PROFILE_DIR]

# The `kind:` a profile may declare -> the spec class it becomes. Data for one device is a YAML;
# a new *kind* of device (e.g. a PIM) is one class plus one line here.
DEVICE_KINDS: Registry[type[DeviceSpec]] = Registry("device kind", {"gpu": DeviceSpec,
                                                                  "duplex": DuplexSpec})

_TERA, _GIGA, _GIB, _MICRO, _MILLI = 1e12, 1e9, 2**30, 1e-6, 1e-3


def _positive(section: object, at: str, *names: str) -> None:
    for name in names:
        value = getattr(section, name)
        require(value > 0, f"{at}.{name}", "a number > 0", value)


# Each section checks its values in ``check(at)``, called by ProfileFile.__post_init__ with the
# section's name: sim.config.parse reports a ConfigValueError raised inside a nested dataclass
# without the section prefix ("idle_w", not "power.idle_w").


@dataclass(frozen=True)
class ComputeSection:
    """Dense (no sparsity) peak throughput per dtype, TFLOP/s."""

    bf16_tflops: float
    fp16_tflops: float
    fp8_tflops: float
    fp32_tflops: float

    def check(self, at: str) -> None:
        _positive(self, at, "bf16_tflops", "fp16_tflops", "fp8_tflops", "fp32_tflops")


@dataclass(frozen=True)
class MemorySection:
    capacity_gib: float                # 1 GiB = 2**30 bytes
    bandwidth_gb_s: float              # 1 GB = 1e9 bytes
    technology: str = ""               # e.g. HBM3; documents the energy assumption

    def check(self, at: str) -> None:
        _positive(self, at, "capacity_gib", "bandwidth_gb_s")


@dataclass(frozen=True)
class InterconnectSection:
    """Device-to-device link used by collectives: per direction per device."""

    name: str
    bandwidth_gb_s: float
    latency_us: float                  # per message

    def check(self, at: str) -> None:
        _positive(self, at, "bandwidth_gb_s")
        require(self.latency_us >= 0, f"{at}.latency_us", "a number >= 0", self.latency_us)


@dataclass(frozen=True)
class PcieSection:
    """Host <-> device link (KV swap), per direction."""

    generation: int
    bandwidth_gb_s: float

    def check(self, at: str) -> None:
        require(self.generation >= 1, f"{at}.generation", "an integer >= 1", self.generation)
        _positive(self, at, "bandwidth_gb_s")


@dataclass(frozen=True)
class PowerSection:
    tdp_w: float
    idle_w: float

    def check(self, at: str) -> None:
        _positive(self, at, "tdp_w")
        # 0 is an idealisation (dynamic energy only), as the Duplex paper's simulator assumes
        require(self.idle_w >= 0, f"{at}.idle_w", "a number >= 0", self.idle_w)
        require(self.idle_w < self.tdp_w, f"{at}.idle_w", f"a number < tdp_w ({self.tdp_w})",
                self.idle_w)


@dataclass(frozen=True)
class EnergySection:
    pj_per_flop: float
    pj_per_hbm_byte: float             # device memory (HBM or GDDR) access

    def check(self, at: str) -> None:
        _positive(self, at, "pj_per_flop", "pj_per_hbm_byte")


@dataclass(frozen=True)
class PriceSection:
    usd_per_hour: float
    basis: str = ""                    # where the number comes from (it is an assumption)

    def check(self, at: str) -> None:
        _positive(self, at, "usd_per_hour")


EFFICIENCY_MODELS = ("learned", "fixed")


@dataclass(frozen=True)
class EfficiencySection:
    """Efficiency in YAML units; defaults are those of :class:`Efficiency`.

    ``model``: how a GPU profile without a ``calibration:`` section costs its ops. ``learned``
    (default): the op kinds that ``sim/hardware/learned_efficiency.yaml`` has curves for (GEMMs)
    on those curves, learned from measured GPUs as fractions of this profile's datasheet peak
    and bandwidth (:mod:`sim.hardware.calibration.learned`); everything else as ``fixed``, which
    costs every op at ``compute`` and ``memory`` of the peaks plus ``kernel_launch_us``. So under
    ``learned`` those three numbers still price the ops without a curve (elementwise, attention,
    fused MoE experts, all-reduce launches, models whose elements are not 2 bytes). Duplex-kind
    devices always use ``fixed``."""

    compute: float = 0.70
    memory: float = 0.85
    interconnect: float = 0.80
    kernel_launch_us: float = 2.0
    iteration_overhead_ms: float = 0.4
    model: str = "learned"

    def check(self, at: str) -> None:
        require(self.model in EFFICIENCY_MODELS, f"{at}.model",
                "one of " + ", ".join(EFFICIENCY_MODELS), self.model)
        for name in ("compute", "memory", "interconnect"):
            value = getattr(self, name)
            require(0 < value <= 1, f"{at}.{name}", "a fraction in (0, 1]", value)
        for name in ("kernel_launch_us", "iteration_overhead_ms"):
            value = getattr(self, name)
            require(value >= 0, f"{at}.{name}", "a number >= 0", value)


_SECTIONS = ("compute", "memory", "interconnect", "pcie", "power", "energy", "price", "efficiency")


@dataclass(frozen=True)
class ProfileFile:
    """The schema of one ``hardware_profiles/<name>.yaml``."""

    name: str
    kind: str
    vendor: str
    compute: ComputeSection
    memory: MemorySection
    interconnect: InterconnectSection
    pcie: PcieSection
    power: PowerSection
    energy: EnergySection
    price: PriceSection
    efficiency: EfficiencySection = EfficiencySection()
    description: str = ""
    sources: tuple[str, ...] = ()
    calibration: CalibrationSection | None = None    # measured kernel tables, fitted curves
    measured: MeasuredSection | None = None   # vLLM layer tables (calibration/layers.py)
    duplex: DuplexSection | None = None   # kind duplex only: PIM, placement, routing, topology

    def __post_init__(self) -> None:
        require(bool(self.name), "name", "a non-empty string", self.name)
        DEVICE_KINDS.require(self.kind, "kind")
        for section in _SECTIONS:
            getattr(self, section).check(section)
        if self.calibration is not None:
            self.calibration.check("calibration")
        if self.measured is not None:
            self.measured.check("measured")
        if self.duplex is not None:
            require(self.kind == "duplex", "duplex", "no duplex section (kind is not duplex)",
                    "a duplex section")
            self.duplex.check("duplex")


def list_devices() -> list[str]:
    """Names of the profiles shipped in PROFILE_DIR or in ./hardware_profiles, sorted."""
    return sorted({p.stem for folder in _profile_dirs() for p in folder.glob("*.yaml")})


def load_device(name_or_path: str, overrides: dict | None = None,
                base_dir: Path | None = None) -> DeviceSpec:
    """A profile by name (``h100-sxm``) or YAML path, ``overrides`` deep-merged before validation.

    ``overrides`` is shaped like the YAML, e.g. ``{"efficiency": {"memory": 0.9}}``, so a wrong key
    or value there gets the same error (file, field, did-you-mean) as one in the file.
    """
    path = _resolve(str(name_or_path), base_dir)
    stamp = path.stat().st_mtime_ns      # part of the cache key: an edited file is reread
    # ... and so is one whose calibration tables changed: their mtimes join the key
    raw = _read_yaml(str(path), stamp)
    stamp = (stamp, *table_stamps(path, raw), *measured_stamps(path, raw))
    if not overrides:
        return _load_cached(str(path), stamp)
    if not isinstance(overrides, dict):
        raise ScenarioError(_shown(str(path)), None, "overrides as a mapping", overrides)
    data = _with_assumptions(_read_yaml(str(path), stamp), overrides)
    return _to_spec(parse(ProfileFile, data, path=_shown(str(path))), str(path))


def _with_assumptions(raw: dict, overrides: dict) -> dict:
    """``raw`` with ``overrides`` merged in; with ``duplex.assumptions: paper`` (in either), the
    paper's overlay goes between them, so what a scenario sets itself still wins."""
    data = _deep_merge(raw, overrides)
    if assumptions_of(data) == "paper":
        data = _deep_merge(_deep_merge(raw, paper_overlay(data)), overrides)
    return data


def _resolve(name_or_path: str, base_dir: Path | None) -> Path:
    looks_like_path = any(sep in name_or_path for sep in ("/", "\\")) or \
        name_or_path.endswith((".yaml", ".yml"))
    if not looks_like_path:
        for folder in _profile_dirs():
            candidate = folder / f"{name_or_path}.yaml"
            if candidate.is_file():
                return candidate.resolve()
    path = Path(name_or_path).expanduser()
    if not path.is_absolute() and base_dir is not None:
        path = Path(base_dir) / path
    if path.is_file():
        return path.resolve()
    if looks_like_path:
        raise HardwareError(f"hardware profile file not found: {path}")
    hint = did_you_mean(name_or_path, list_devices())
    raise HardwareError(f"unknown hardware '{name_or_path}'; {hint}")


@functools.lru_cache(maxsize=None)
def _read_yaml(path: str, mtime_ns: int) -> dict:
    """The raw mapping of a profile file. Callers must not mutate it (it is shared)."""
    text = read_text(path, _shown(path))
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "cannot parse"
        raise ScenarioError(_shown(path), None, None,
                            hint=f"malformed YAML{where}: {problem}") from None
    if not isinstance(data, dict):
        raise ScenarioError(_shown(path), None,
                            "a mapping of profile sections (name, compute, memory, ...)", data)
    return data


@functools.lru_cache(maxsize=None)
def _load_cached(path: str, mtime_ns: int) -> DeviceSpec:
    data = _with_assumptions(_read_yaml(path, mtime_ns), {})
    profile = parse(ProfileFile, data, path=_shown(path))
    if Path(path).parent in _profile_dirs() and profile.name != Path(path).stem:
        # A copied profile whose name was not updated would silently report the wrong device.
        raise ScenarioError(_shown(path), "name", f"'{Path(path).stem}' (the file name)",
                            profile.name)
    return _to_spec(profile, path)


def _shown(path: str) -> str:
    """``path`` for error messages: relative to the working directory when it is below it."""
    try:
        return str(Path(path).relative_to(Path.cwd()))
    except ValueError:
        return path


def _deep_merge(base: dict, overrides: dict) -> dict:
    """``base`` with ``overrides`` merged in, mapping by mapping; neither input is modified."""
    merged = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _to_spec(p: ProfileFile, path: str) -> DeviceSpec:
    c, m, e = p.compute, p.memory, p.efficiency
    fields: dict[str, Any] = dict(
        name=p.name,
        kind=p.kind,
        vendor=p.vendor,
        bf16_flops=c.bf16_tflops * _TERA,
        fp16_flops=c.fp16_tflops * _TERA,
        fp8_flops=c.fp8_tflops * _TERA,
        fp32_flops=c.fp32_tflops * _TERA,
        hbm_bytes=m.capacity_gib * _GIB,
        hbm_bandwidth=m.bandwidth_gb_s * _GIGA,
        interconnect_bandwidth=p.interconnect.bandwidth_gb_s * _GIGA,
        interconnect_latency_s=p.interconnect.latency_us * _MICRO,
        pcie_bandwidth=p.pcie.bandwidth_gb_s * _GIGA,
        tdp_w=p.power.tdp_w,
        idle_w=p.power.idle_w,
        energy_pj_per_flop=p.energy.pj_per_flop,
        energy_pj_per_hbm_byte=p.energy.pj_per_hbm_byte,
        price_usd_per_hour=p.price.usd_per_hour,
        efficiency=Efficiency(compute=e.compute, memory=e.memory, interconnect=e.interconnect,
                              kernel_launch_s=e.kernel_launch_us * _MICRO,
                              iteration_overhead_s=e.iteration_overhead_ms * _MILLI),
        description=p.description,
        sources=tuple(p.sources),
    )
    # -- calibration: tables beside the YAML, read only when the section is there ------------
    if p.calibration is not None:
        from sim.hardware.calibration.data import load_calibration
        fields["calibration"] = load_calibration(p.calibration, path, _shown(path))
    elif e.model == "learned" and p.kind == "gpu":
        # no measurements: the curves learned from measured GPUs (Duplex devices keep their own
        # model, whose PIM and xPU share one fixed efficiency to keep comparisons neutral)
        from sim.hardware.calibration.learned import learned_calibration
        fields["calibration"] = learned_calibration()
    if p.measured is not None and p.measured.entries:
        from sim.hardware.calibration.layers import load_measured
        fields["measured"] = load_measured(p.measured, path, _shown(path))
    if p.duplex is not None:     # the PIM, placement, routing and topology fields
        fields.update(p.duplex.spec_fields())
    return DEVICE_KINDS[p.kind](**fields)
