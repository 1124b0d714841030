"""The one YAML reader (setup file, matrix files): parsed once, hostile input refused with its line."""

from __future__ import annotations

from pathlib import Path

import pytest
from cartstatus.yamlfile import YamlFileError, load_yaml


def read(tmp_path: Path, text: str) -> tuple[object, object]:
    path = tmp_path / "f.yaml"
    path.write_text(text)
    return load_yaml(path)


def test_a_merge_override_is_located_on_its_own_line(tmp_path: Path) -> None:
    data, locate = read(tmp_path, "base: &b\n  url: a\n  user: u\nshop:\n  <<: *b\n  url: b\n")
    assert data == {"base": {"url": "a", "user": "u"}, "shop": {"url": "b", "user": "u"}}
    assert locate(["shop", "url"]) == 6  # the value in force, not the merged one on line 2
    assert locate(["shop", "user"]) == 3


def test_dates_stay_text_for_the_schema_to_check(tmp_path: Path) -> None:
    data, _ = read(tmp_path, "a: 2027-11-30\nb: 2027-02-30\nc: '2027-11-30'\nd: !!timestamp 2027-11-30\n"
                             "e: !!timestamp 2027-02-30\nf: 2027-11-30T10:00:00Z\n")
    assert data == {"a": "2027-11-30", "b": "2027-02-30", "c": "2027-11-30", "d": "2027-11-30", "e": "2027-02-30",
                    "f": "2027-11-30T10:00:00Z"}


@pytest.mark.parametrize(("text", "line", "field", "message"), [
    ("a: 1\nb: " + "9" * 5000 + "\n", 2, "b", "cannot be read as int: Exceeds the limit (4300 digits)"),
    # Values JSON has no type for: a schema could only show them as Python does (b'hello', {'a': None}).
    ("a:\n  b: !!binary 'not base64!'\n", 2, "a.b", "a !!binary value cannot be used here: write text"),
    ("a: !!binary aGVsbG8=\n", 1, "a", "a !!binary value cannot be used here"),
    ("a: 1\nb: !!set {x, y}\n", 2, "b", "a !!set value cannot be used here"),
    ("a: [1, !!omap [x: 1]]\n", 1, "a[1]", "a !!omap value cannot be used here"),
    ("a: 1\n---\nb: 2\n", 2, "(syntax)",
     "not valid YAML: expected a single document in the stream, but found another document"),
    ("a: [1, 2\n", 2, "(syntax)", "not valid YAML"),
    ("a: !python/object:os.system ls\n", 1, "(syntax)", "could not determine a constructor"),
])
def test_a_value_that_cannot_be_read_names_its_line(text: str, line: int, field: str, message: str,
                                                    tmp_path: Path) -> None:
    with pytest.raises(YamlFileError) as caught:
        read(tmp_path, text)
    assert (caught.value.line, caught.value.field) == (line, field)
    assert message in caught.value.message
