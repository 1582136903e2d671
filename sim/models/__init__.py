"""Model shapes: the built-in catalog, HF ``config.json`` files and model YAMLs -> ModelSpec.

A scenario's ``model:`` is a catalog name (``llama-3.1-8b``), a Hugging Face repository name
the catalog knows (``meta-llama/Llama-3.1-8B``), or a path to a HF config.json, a
directory holding one, or a YAML whose keys are ModelSpec fields.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from sim.config import parse
from sim.errors import ModelError, did_you_mean
from sim.models.catalog import CATALOG, HF_NAMES, catalog_name
from sim.models.hf_config import ARCHITECTURES, check_spec, load_hf_config
from sim.models.spec import ModelSpec

_YAML_SUFFIXES = (".yaml", ".yml")


def get_model(name_or_path: str, base_dir: Path | None = None) -> ModelSpec:
    """A catalog name, else a file path; relative paths resolve against ``base_dir`` if given
    (the scenario's directory, so a scenario's model path does not depend on the cwd)."""
    known = catalog_name(name_or_path)
    if known is not None:
        return CATALOG[known]
    path = Path(name_or_path).expanduser()
    if base_dir is not None and not path.is_absolute():
        path = Path(base_dir) / path
    if not path.exists():
        raise ModelError(f"unknown model {name_or_path!r}: not a catalog name nor an existing "
                         f"file; {did_you_mean(name_or_path, CATALOG)}")
    if path.is_dir() or path.suffix == ".json":
        return load_hf_config(path)
    if path.suffix in _YAML_SUFFIXES:
        return load_model_yaml(path)
    raise ModelError(f"{path}: expected a HF config.json, a directory holding one, or a model "
                     f"YAML (.yaml/.yml)")


def load_model_yaml(path: str | Path) -> ModelSpec:
    """A YAML of ModelSpec fields; ``name`` defaults to the file stem. Bad fields are
    ScenarioErrors (file: field: expected, got), like every other YAML spec."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ModelError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise ModelError(f"{path}: not valid YAML: {' '.join(str(exc).split())}") from None
    if isinstance(data, dict):
        data = {"name": path.stem, "source": str(path), **data}
    spec = parse(ModelSpec, data, path=str(path))
    check_spec(spec, str(path))
    return spec


def list_models() -> list[ModelSpec]:
    """Catalog entries sorted by name."""
    return [CATALOG[name] for name in sorted(CATALOG)]


__all__ = ["ARCHITECTURES", "CATALOG", "ModelSpec", "get_model", "list_models",
           "load_hf_config", "load_model_yaml"]
