"""YAML through libyaml reads every shipped document exactly as PyYAML's Python parser does."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from foundation.yaml_text import SAFE_LOADER, load_yaml
from tests.helpers.paths import REPO

SHIPPED = sorted(
    path for folder in ("taxonomy", "validators", "flows/examples") for path in (REPO / folder).rglob("*.yaml")
)


def test_libyaml_is_what_reads_yaml_here():
    assert SAFE_LOADER is yaml.CSafeLoader  # the wheels PyYAML ships on Linux carry it


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p.relative_to(REPO)))
def test_a_shipped_document_reads_the_same_as_with_the_python_parser(path: Path):
    text = path.read_text(encoding="utf-8")
    assert load_yaml(text) == yaml.safe_load(text)


def test_a_syntax_error_carries_the_line_it_is_on():
    with pytest.raises(yaml.YAMLError) as caught:
        load_yaml("name: x\npopulation: [1, 2\nseed: 3\n")
    assert caught.value.problem_mark.line == 2  # type: ignore[attr-defined]
