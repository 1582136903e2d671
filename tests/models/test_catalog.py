"""The built-in catalog against published parameter counts and hand-computed shapes."""

from __future__ import annotations

import pytest

from sim.models import CATALOG, get_model, list_models
from sim.models.hf_config import check_spec

# name -> (published total parameters, relative tolerance). Tolerance 0: the HF safetensors
# total, which ModelSpec must reproduce exactly (these models have nothing ModelSpec omits).
PUBLISHED = {
    "llama-2-7b": (6_738_415_616, 0),
    "llama-2-13b": (13_015_864_320, 0),
    "llama-2-70b": (68_976_648_192, 0),
    "llama-3.1-8b": (8_030_261_248, 0),
    "llama-3.1-70b": (70_553_706_496, 0),
    "qwen2.5-7b": (7_615_616_512, 0),
    "mixtral-8x7b": (46_702_792_704, 0),
    # Qwen3 adds per-head q/k RMSNorms (256 weights a layer) that ModelSpec does not count.
    "qwen3-32b": (32_762_123_264, 1e-6),
    "qwen3-30b-a3b": (30_532_122_624, 1e-6),
    "opt-66b": (66e9, 0.01),        # "66B"; OPT's position embeddings and biases are left out
    "grok-1": (314e9, 0.01),
    "glam-143b": (143e9, 0.02),
}


def test_every_catalog_entry_has_a_published_total() -> None:
    assert set(PUBLISHED) == set(CATALOG)


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_param_total_matches_published(name: str) -> None:
    published, tolerance = PUBLISHED[name]
    assert CATALOG[name].num_params == pytest.approx(published, rel=tolerance, abs=0)


@pytest.mark.parametrize("name", sorted(CATALOG))
def test_entries_are_consistent(name: str) -> None:
    spec = CATALOG[name]
    assert spec.name == name
    assert spec.source
    assert spec.dtype_bytes == 2
    check_spec(spec, "catalog")     # raises on inconsistency


def test_kv_bytes_per_token_by_hand() -> None:
    # 2 (K and V) x layers x kv_heads x head_dim x 2 bytes
    assert CATALOG["llama-3.1-8b"].kv_bytes_per_token == 2 * 32 * 8 * 128 * 2 == 131072
    assert CATALOG["mixtral-8x7b"].kv_bytes_per_token == 2 * 32 * 8 * 128 * 2
    assert CATALOG["llama-2-7b"].kv_bytes_per_token == 2 * 32 * 32 * 128 * 2 == 524288
    assert CATALOG["llama-2-70b"].kv_bytes_per_token == 2 * 80 * 8 * 128 * 2
    assert CATALOG["qwen2.5-7b"].kv_bytes_per_token == 2 * 28 * 4 * 128 * 2 == 57344
    # head_dim 128 rather than hidden/heads = 80 is what makes this 262144
    assert CATALOG["qwen3-32b"].kv_bytes_per_token == 2 * 64 * 8 * 128 * 2 == 262144
    assert CATALOG["qwen3-30b-a3b"].kv_bytes_per_token == 2 * 48 * 4 * 128 * 2


@pytest.mark.parametrize("name, group", [
    ("llama-2-7b", 1), ("llama-2-13b", 1), ("llama-2-70b", 8), ("llama-3.1-8b", 4),
    ("llama-3.1-70b", 8), ("qwen2.5-7b", 7), ("qwen3-32b", 8), ("qwen3-30b-a3b", 8),
    ("mixtral-8x7b", 4), ("grok-1", 6), ("opt-66b", 1), ("glam-143b", 1),
])
def test_gqa_group_size(name: str, group: int) -> None:
    assert CATALOG[name].gqa_group_size == group


def test_mixtral_active_params_by_hand() -> None:
    h, layers = 4096, 32
    attention = h * (4096 + 2 * 1024) + 4096 * h
    two_experts = 2 * 3 * h * 14336
    router = h * 8
    per_layer = attention + two_experts + router + 2 * h
    expected = layers * per_layer + 2 * 32000 * h + h
    assert CATALOG["mixtral-8x7b"].num_active_params == expected
    assert expected == pytest.approx(12.9e9, rel=0.01)     # published "12.9B active"


def test_qwen3_moe_active_params() -> None:
    spec = CATALOG["qwen3-30b-a3b"]
    assert spec.num_active_params == pytest.approx(3.3e9, rel=0.03)    # "A3B": 3.3B active
    assert (spec.num_moe_layers, spec.num_dense_layers) == (48, 0)


def test_glam_every_other_layer_is_moe() -> None:
    spec = CATALOG["glam-143b"]
    assert (spec.num_moe_layers, spec.num_dense_layers) == (16, 16)
    h = 4096
    attention, ffn = 4 * h * h, 2 * h * 16384
    expected_active = 32 * (attention + 2 * h) + 16 * ffn + 16 * (2 * ffn + h * 64) \
        + 256000 * h + h
    assert spec.num_active_params == expected_active
    # The paper's 8.7B active excludes the (shared) embedding.
    assert expected_active - 256000 * h == pytest.approx(8.7e9, rel=0.02)


def test_grok_active_params_by_hand() -> None:
    h = 6144
    per_layer = h * (6144 + 2 * 1024) + 6144 * h + 2 * 3 * h * 32768 + h * 8 + 2 * h
    expected = 64 * per_layer + 131072 * h + h
    assert CATALOG["grok-1"].num_active_params == expected


@pytest.mark.parametrize("name", ["llama-2-7b", "llama-3.1-70b", "qwen3-32b", "opt-66b"])
def test_dense_models_have_no_moe(name: str) -> None:
    spec = CATALOG[name]
    assert not spec.is_moe
    assert spec.num_moe_layers == 0
    assert spec.num_active_params == spec.num_params


def test_list_models_is_the_catalog_sorted() -> None:
    names = [m.name for m in list_models()]
    assert names == sorted(CATALOG)
    assert get_model("llama-3.1-8b") is CATALOG["llama-3.1-8b"]
