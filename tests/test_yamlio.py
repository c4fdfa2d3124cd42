"""YAML as the site reads and writes it: YAML 1.2 semantics, errors with lines, round trips."""

from __future__ import annotations

import pytest

from generator import yamlio


def test_yaml_1_2_scalars_mean_what_they_say() -> None:
    data = yamlio.parse("country: NO\nanswer: yes\nswitch: off\nsize: 1e3\ncode: 017\n"
                        "when: 2024-01-02\nquoted: '2024-01-02'\ntime: 1:20\n", "x.yaml")
    # No Norway problem, no sexagesimal, dates stay text (JSON Schema has no date type).
    assert data == {"country": "NO", "answer": "yes", "switch": "off", "size": 1000.0, "code": 17,
                    "when": "2024-01-02", "quoted": "2024-01-02", "time": "1:20"}


TRICKY = ["1e3", "0o17", "1_000", "-1e5", ".5", "1.", "yes", "NO", "on", "2024-01-02", "1:20", "0x1F",
          "+1", "~", "null", "True", ".inf", "-.nan", "007", "3.14", "1E-3", "a: b", "- x", "#c", "",
          " lead", "trail ", "@x", "'q'", '"dq"', "multi\nline", "é J/cm²", "</script>"]


@pytest.mark.parametrize("text", TRICKY)
def test_what_is_written_reads_back_unchanged(text: str) -> None:
    record = {"output": {"value": text, "list": [text, 1, 2.5, True, None]}}
    assert yamlio.parse(yamlio.dump(record), "x.yaml") == record


@pytest.mark.parametrize("bad, line, words", [
    ("a: [1,\nb: 2\n", 2, "invalid YAML"),
    ("a: b: c\n", 1, "mapping values are not allowed"),
    ("a: 1\nb:\n  c: 1\n  c: 2\n", 4, "duplicate mapping key"),
    ("key: @bad\n", 1, "unexpected character"),
])
def test_syntax_errors_name_the_line(bad: str, line: int, words: str) -> None:
    with pytest.raises(yamlio.YamlSyntaxError) as caught:
        yamlio.parse(bad, "materials/x.yaml")
    problem = caught.value.problem
    assert (problem.file, problem.line) == ("materials/x.yaml", line)
    assert words in problem.message


def test_empty_documents_and_byte_order_mark() -> None:
    assert yamlio.parse("", "x") is None and yamlio.parse("# only a comment\n", "x") is None
    assert yamlio.parse("\ufeffname: Oak\n", "x") == {"name": "Oak"}
