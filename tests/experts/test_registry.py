from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from experts.errors import RegistryError, UnknownExpert
from experts.registry import ExpertRegistry

ROOT = Path(__file__).resolve().parents[2]


def shipped() -> dict:
    return yaml.safe_load((ROOT / "experts" / "experts.yaml").read_text())


def test_shipped_registry_loads_all_four_experts() -> None:
    registry = ExpertRegistry.from_yaml(ROOT / "experts" / "experts.yaml")
    assert registry.names == ["code", "legal", "support", "general"]
    legal = registry.get("legal")
    assert legal.llm.is_local
    assert legal.capacity == 2  # its own value wins over defaults
    assert legal.params.max_tokens == 256  # from defaults
    assert registry.fallback_chain("legal") == ["general"]
    assert registry.fallback_chain("general") == []


def test_unknown_field_is_named() -> None:
    raw = shipped()
    raw["experts"]["legal"]["capacty"] = 3
    with pytest.raises(RegistryError, match=r"experts\.legal\.capacty: unknown field"):
        ExpertRegistry.from_mapping(raw)


def test_bad_value_is_named() -> None:
    raw = shipped()
    raw["experts"]["code"]["capacity"] = 0
    with pytest.raises(RegistryError, match=r"experts\.code\.capacity"):
        ExpertRegistry.from_mapping(raw)


def test_nested_unknown_field_is_named() -> None:
    raw = shipped()
    raw["experts"]["support"]["llm"] = {"model": "openai/x", "apibase": "http://x"}
    with pytest.raises(RegistryError, match=r"experts\.support\.llm\.apibase: unknown field"):
        ExpertRegistry.from_mapping(raw)


def test_generalist_is_required() -> None:
    raw = shipped()
    del raw["experts"]["general"]
    raw["experts"]["code"]["fallback"] = []
    raw["experts"]["legal"]["fallback"] = []
    raw["experts"]["support"]["fallback"] = []
    with pytest.raises(RegistryError, match="generalist 'general' must be defined"):
        ExpertRegistry.from_mapping(raw)


def test_unknown_fallback_target_is_named() -> None:
    raw = shipped()
    raw["experts"]["code"]["fallback"] = ["ops"]
    with pytest.raises(RegistryError, match=r"experts\.code\.fallback: unknown expert 'ops'"):
        ExpertRegistry.from_mapping(raw)


def test_reserved_name_auto_is_refused() -> None:
    raw = shipped()
    raw["experts"]["auto"] = raw["experts"]["code"]
    with pytest.raises(RegistryError, match="not 'auto'"):
        ExpertRegistry.from_mapping(raw)


def test_fallback_chain_follows_links_and_ends_at_general() -> None:
    raw = shipped()
    raw["experts"]["code"]["fallback"] = ["support"]
    raw["experts"]["support"]["fallback"] = ["legal"]
    raw["experts"]["legal"]["fallback"] = ["code"]
    registry = ExpertRegistry.from_mapping(raw)
    assert registry.fallback_chain("code") == ["support", "legal", "general"]


def test_unknown_expert_lookup() -> None:
    registry = ExpertRegistry.from_mapping(shipped())
    with pytest.raises(UnknownExpert, match="known experts: code, legal, support, general"):
        registry.get("finance")


def test_missing_file_is_a_registry_error(tmp_path: Path) -> None:
    with pytest.raises(RegistryError, match="cannot read experts file"):
        ExpertRegistry.from_yaml(tmp_path / "nope.yaml")


def test_invalid_yaml_is_a_registry_error(tmp_path: Path) -> None:
    bad = tmp_path / "experts.yaml"
    bad.write_text("experts: [unclosed")
    with pytest.raises(RegistryError, match="not valid YAML"):
        ExpertRegistry.from_yaml(bad)


def test_replicas_are_validated() -> None:
    raw = shipped()
    raw["experts"]["code"]["llm"] = {"model": "hosted_vllm/qwen", "api_base": "http://gpu-a:8000/v1"}
    raw["experts"]["code"]["replicas"] = [
        {"api_base": "http://gpu-a:8000/v1", "capacity": 3},
        {"api_base": "http://gpu-b:8000/v1"},
    ]
    code = ExpertRegistry.from_mapping(raw).get("code")
    assert [(r.api_base, r.capacity) for r in code.replicas] == [("http://gpu-a:8000/v1", 3), ("http://gpu-b:8000/v1", 4)]
    raw["experts"]["code"]["replicas"][1]["api_base"] = "http://gpu-a:8000/v1"
    with pytest.raises(RegistryError, match=r"experts\.code: .*each replica needs its own api_base"):
        ExpertRegistry.from_mapping(raw)
    raw["experts"]["legal"]["replicas"] = [{"api_base": "http://x:1/v1"}]  # legal uses api_base: local
    raw["experts"]["code"]["replicas"] = []
    with pytest.raises(RegistryError, match=r"experts\.legal: .*not available with api_base 'local'"):
        ExpertRegistry.from_mapping(raw)
