"""A misbehaving model through a real `site build`: no defective answer reaches content/ or build/,
no clean answer is rejected, and the rejections are counted by validator (issue 16).

The loopback fake Ollama answers from per-material queues: each caption request of the defective
run gets, attempt after attempt (the first answer and both repair retries), a different planting
of one defect class (tests/defect_corpus.py: another material, <script>, on*= handlers,
</script> and template syntax, people not in data/, prices and sales wording, wrong numbers with
units, preambles, placeholders, links; at least ten plantings each); the clean run answers every LLM component of 60
materials from the material's own data.
"""

from __future__ import annotations

import html
import re
import shutil
from pathlib import Path

import pytest
import yaml

from generator.llm.validators import SiteFacts, effective_validators, validate_validator_specs
from tests.conftest import copy_site, run_site
from tests.defect_corpus import (DEFECT_CLASSES, EXPECTED_VALIDATOR, clean_answer, defective_caption,
                                 material_of, materials)
from tests.fakes import FakeOllama
from tests.llm_helpers import all_text_under, component_of

ATTEMPTS = 3  # site.yaml: repair_retries: 2


def env_for(fake: FakeOllama) -> dict:
    return {"OLLAMA_HOST": fake.url, "SITE_LLM_CHAIN": "ollama", "GROQ_API_KEY": ""}


def rejection_counts(output: str, prefix: str) -> dict[str, int]:
    line = next(ln for ln in output.splitlines() if ln.startswith(prefix))
    return {name: int(n) for name, n in re.findall(r"([a-z_]+) (\d+)", line[len(prefix):])}


@pytest.fixture
def ollama():
    with FakeOllama(models=["llama3.2:latest"]) as fake:
        yield fake


def test_no_defective_answer_reaches_content_or_build(tmp_path: Path, ollama) -> None:
    root = copy_site(tmp_path / "site")
    shutil.rmtree(root / "content/components/caption")
    data = materials()
    names = {d["name"]: slug for slug, d in data.items()}
    queues: dict[str, list[str]] = {}
    planted: dict[str, list[str]] = {cls: [] for cls in DEFECT_CLASSES}
    per_class: dict[str, int] = {cls: 0 for cls in DEFECT_CLASSES}
    for i, (slug, d) in enumerate(data.items()):
        cls = DEFECT_CLASSES[i % len(DEFECT_CLASSES)]
        per_class[cls] += 1
        answers = [defective_caption(slug, d, cls, (i // len(DEFECT_CLASSES)) * ATTEMPTS + j) for j in range(ATTEMPTS)]
        queues[slug] = [text for text, _ in answers]
        planted[cls] += [p for _, p in answers]
    assert all(len(set(p)) >= 10 for p in planted.values()), {c: len(set(p)) for c, p in planted.items()}
    ollama.responder = lambda body: queues[material_of(body, names)].pop(0)

    result = run_site(root, "build", env=env_for(ollama))

    assert result.exit_code == 1, result.output
    assert len(ollama.chat_calls()) == ATTEMPTS * len(data)  # every answer reached the chain, and was refused
    assert all(not q for q in queues.values())
    assert not (root / "content/components/caption").exists() or not list((root / "content/components/caption").iterdir())
    published = all_text_under(root / "build", root / "content")
    for cls, texts in planted.items():
        for text in set(texts):
            stripped = text.strip()
            assert stripped not in published and html.escape(stripped) not in published, (cls, text)
    assert (root / "build/metal/aluminum/index.html").is_file()  # built, without its caption
    counts = rejection_counts(result.output, "rejected answers by validator: ")
    for cls, n in per_class.items():
        assert counts.get(EXPECTED_VALIDATOR[cls], 0) >= ATTEMPTS * n, (cls, counts)
    status = run_site(root, "status", "--no-health")
    assert status.exit_code == 0
    assert rejection_counts(status.output, "Answers rejected in the last build that called a model: ") == counts


def test_no_clean_answer_is_rejected(tmp_path: Path, ollama) -> None:
    data = dict(list(materials().items())[:60])
    root = copy_site(tmp_path / "site", list(data))
    shutil.rmtree(root / "content/components")
    names = {d["name"]: slug for slug, d in data.items()}
    index = {slug: i for i, slug in enumerate(data)}
    sent: dict[tuple[str, str], dict] = {}

    def answer(body: dict) -> dict:
        component, slug = component_of(body), material_of(body, names)
        sent[(component, slug)] = clean_answer(component, slug, data[slug], index[slug])
        return sent[(component, slug)]

    ollama.responder = answer
    result = run_site(root, "build", env=env_for(ollama))

    assert result.exit_code == 0, result.output
    assert len(sent) == 4 * len(data) >= 50 * 4
    assert len(ollama.chat_calls()) == len(sent)  # no repair retry: nothing was rejected
    assert "rejected answers" not in result.output
    for (component, slug), answer_sent in sent.items():
        record = yaml.safe_load((root / f"content/components/{component}/{slug}.yaml").read_text())
        assert record["provider"] == "ollama" and record["output"] == answer_sent
    status = run_site(root, "status", "--no-health")
    assert "Answers rejected in the last build that called a model: none" in status.output


def test_a_default_validator_switched_off_lets_its_defect_through(tmp_path: Path, ollama) -> None:
    root = copy_site(tmp_path / "site", ["oak"])
    path = root / "components/caption/component.yaml"
    path.write_text(path.read_text().replace(
        "  - {type: grounded_numbers}\n",
        "  - {type: grounded_numbers, enabled: false}\n  - {type: no_commerce, enabled: false}\n"))
    data = materials()["oak"]
    text, planted = defective_caption("oak", data, "commerce", 0)  # "Order today for just $89.99."
    ollama.responder = lambda body: text
    result = run_site(root, "regen", "--component", "caption", "--material", "oak", env=env_for(ollama))
    assert result.exit_code == 0, result.output
    assert planted in (root / "content/components/caption/oak.yaml").read_text()
    # switched back on (the default): the same answer is refused
    path.write_text(path.read_text().replace("  - {type: no_commerce, enabled: false}\n", ""))
    result = run_site(root, "regen", "--component", "caption", "--material", "oak", env=env_for(ollama))
    assert result.exit_code == 1 and "no_commerce" in result.output


def test_hand_edits_are_checked_kept_and_warned_about(tmp_path: Path) -> None:
    root = copy_site(tmp_path / "site", ["oak"])
    path = root / "content/components/caption/oak.yaml"
    path.write_text(path.read_text().replace("Under magnification", "Reviewed by Test Author. Under magnification", 1))
    result = run_site(root, "build", "--frozen")
    assert result.exit_code == 0, result.output
    assert "caption:oak: edited by hand, and fails today's validators: no_foreign_entities" in result.output
    assert "Test Author" in result.output
    assert "Reviewed by Test Author" in (root / "build/wood/oak/index.html").read_text()  # a person kept it


def test_default_validators_and_their_switches() -> None:
    facts = SiteFacts(materials=("Oak",))
    types = [v["type"] for v in effective_validators([{"type": "words", "field": "a", "max": 3},
                                                      {"type": "plain_text", "enabled": False},
                                                      {"type": "grounded_numbers", "tolerance": 0.01}], facts)]
    assert types == ["words", "grounded_numbers", "no_placeholders", "no_preamble", "no_foreign_entities",
                     "no_commerce"]
    assert validate_validator_specs([{"type": "no_commerce", "enabled": False}]) == []
    [problem] = validate_validator_specs([{"type": "no_commerce", "enabled": "no"}])
    assert "enabled must be true or false" in problem
    [problem] = validate_validator_specs([{"type": "no_commerce", "facts": []}])
    assert "unknown key 'facts'" in problem


def test_batch_answers_get_the_same_checks(tmp_path: Path) -> None:
    """Defective batch lines are refused like live answers and go through the live chain."""
    from tests.fakes import FakeGroq
    from tests.test_batch import COMMITTED, SECRET, Answers, env, make_site

    with FakeGroq(api_key=SECRET) as fake:
        answers = Answers()
        fake.responder = answers
        caption = dict(COMMITTED[("caption", "oak")]["output"])
        caption["before"] += " <img src=x onerror=alert(1)>"
        bullets = list(COMMITTED[("bullets", "aluminum")]["output"]["bullets"])
        bullets[3] = "Order today for just $89.99 and get free shipping on every pulsed laser head."
        answers.bad[("caption", "oak")] = [caption]
        answers.bad[("bullets", "aluminum")] = [{"bullets": bullets}]
        root = make_site(tmp_path)
        result = run_site(root, "build", "--batch", "--chain", "groq", env=env(fake))
        assert result.exit_code == 0, result.output
        assert "2 line(s) invalid or failed" in result.output
        assert len(fake.chat_calls()) == 2  # the two refused lines, answered live
        for ident in [("caption", "oak"), ("bullets", "aluminum")]:
            record = yaml.safe_load((root / f"content/components/{ident[0]}/{ident[1]}.yaml").read_text())
            assert record["output"] == COMMITTED[ident]["output"]
        published = all_text_under(root / "build", root / "content")
        assert "onerror" not in published and "89.99" not in published
        counts = rejection_counts(result.output, "rejected answers by validator: ")
        assert counts["plain_text"] == 1 and counts["no_commerce"] == 1 and counts["grounded_numbers"] == 1
