import os
from pathlib import Path

import pytest
import yaml

from meshpilot.mesh import files
from meshpilot.mesh.model import Column


def test_yaml_lines_are_recorded_for_every_key_path() -> None:
    doc, problems = files.parse_yaml("a: 1\nb:\n  - name: x\n  - name: y\n    type: INT\n", "f.yaml")
    assert problems == []
    assert doc.line_of(("b", 1, "type")) == 5
    assert doc.line_of(("b", 0)) == 3
    # A path that goes deeper than the document points at its deepest existing part.
    assert doc.line_of(("b", 1, "type", "nope")) == 5


def test_yaml_dates_stay_strings() -> None:
    doc, _ = files.parse_yaml("when: 2024-01-01\n", "f.yaml")
    assert doc.data == {"when": "2024-01-01"}


def test_broken_yaml_reports_file_and_line() -> None:
    doc, problems = files.parse_yaml("a: 1\nb: [1, 2\nc: 3\n", "products/x.yaml")
    assert doc is None
    assert len(problems) == 1
    assert problems[0].source == "products/x.yaml"
    assert problems[0].line in (3, 4)
    assert "invalid YAML" in problems[0].message


def test_validation_problems_point_at_the_offending_line() -> None:
    doc, _ = files.parse_yaml("name: a\nnullable: perhaps\n", "c.yaml")
    value, problems = doc.validate(Column)
    assert value is None
    assert [(p.line, "nullable" in p.message) for p in problems] == [(2, True)]


def test_atomic_write_replaces_whole_files(tmp_path: Path) -> None:
    target = tmp_path / "x.yaml"
    files.atomic_write_text(target, "one\n")
    files.atomic_write_text(target, "two\n")
    assert target.read_text() == "two\n"
    assert [p.name for p in tmp_path.iterdir()] == ["x.yaml"]


def test_a_crash_mid_write_leaves_the_old_file_and_no_debris(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "x.yaml"
    files.atomic_write_text(target, "original\n")
    os.chmod(target, 0o640)

    def crash(*_: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        files.atomic_write_text(target, "half-written\n")
    assert target.read_text() == "original\n"
    assert [p.name for p in tmp_path.iterdir()] == ["x.yaml"]
    monkeypatch.undo()
    files.atomic_write_text(target, "new\n")
    assert target.stat().st_mode & 0o777 == 0o640  # the file keeps its permissions


def test_many_documents_dump_in_worker_processes_as_they_would_one_by_one(monkeypatch) -> None:
    from meshpilot.mesh import files

    documents = [{"id": f"p{i}", "name": "yes" if i % 2 else "2026-01-01", "tags": ["a", True, None, 1.5],
                  "nested": {"text": "two\nlines", "empty": {}, "list": []}} for i in range(12)]
    monkeypatch.setattr(files, "PARALLEL_DUMP_MIN", 4)
    assert files.dump_yaml_many(documents) == [files.dump_yaml(d) for d in documents]
    assert [yaml.safe_load(text) for text in files.dump_yaml_many(documents)] == documents


def test_a_json_line_nested_too_deeply_is_a_problem_on_its_line() -> None:
    doc, problems = files.parse_json_line("[" * 100_000 + "]" * 100_000, "lineage/x.jsonl", 7)
    assert doc is None and problems[0].line == 7 and "nested too deeply" in problems[0].message
