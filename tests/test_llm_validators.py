"""Declarative validators, JSON parsing and validator-spec checking (SPEC §4.3)."""

from __future__ import annotations

import pytest

from generator.llm import validate_output, validate_validator_specs
from generator.llm.validators import check_answer, numbers_with_units, parse_answer

ALUMINUM = {
    "name": "Aluminum",
    "category": "metal",
    "properties": {
        "density": {"value": 2.70, "unit": "g/cm³"},
        "melting_point": {"value": 660.3, "unit": "°C"},
        "thermal_conductivity": {"value": 237, "unit": "W/(m·K)"},
        "specific_heat": {"value": 0.897, "unit": "J/(g·K)"},
        "hardness": {"min": 15, "max": 30, "unit": "HB"},
        "reflectivity_1064nm": {"value": 91, "unit": "%"},
    },
    "laser": {
        "wavelength": {"value": 1064, "unit": "nm"},
        "pulse_duration": {"min": 10, "max": 100, "unit": "ns"},
        "fluence": {"min": 0.8, "max": 2.5, "unit": "J/cm²"},
        "power": {"min": 20, "max": 100, "unit": "W"},
        "spot_size": {"value": 50, "unit": "µm"},
        "repetition_rate": {"min": 20, "max": 100, "unit": "kHz"},
    },
}
ANY = {"type": "object"}


def errors(output, *validators, material=ALUMINUM, schema=ANY):
    assert validate_validator_specs(list(validators)) == []
    return validate_output(output, schema, list(validators), material)


# ---- parsing and schema -------------------------------------------------------------------------


@pytest.mark.parametrize("text", ['{"a": 1}', '```json\n{"a": 1}\n```', '```\n{"a": 1}\n```', '  {"a": 1}\n'])
def test_parse_accepts_json_and_fenced_json(text):
    assert parse_answer(text) == ({"a": 1}, [])


@pytest.mark.parametrize("text, fragment", [
    ("", "empty"), ("Sure! {\"a\": 1}", "not valid JSON"), ('{"a": 1', "not valid JSON"),
    ("[1, 2]", "must be a JSON object"),
])
def test_parse_rejects(text, fragment):
    output, errs = parse_answer(text)
    assert output is None and fragment in errs[0]


def test_schema_errors_name_the_field():
    schema = {"type": "object", "required": ["bullets", "title"],
              "properties": {"bullets": {"type": "array", "items": {"type": "string", "maxLength": 5}},
                             "title": {"type": "string"}}}
    errs = validate_output({"bullets": ["ok", "far too long"]}, schema, [], ALUMINUM)
    assert "(output): 'title' is a required property" in errs
    assert any(e.startswith("bullets[1]: 'far too long' is too long") for e in errs)


def test_check_answer_runs_schema_then_validators():
    schema = {"type": "object", "properties": {"t": {"type": "string"}}}
    assert check_answer('{"t": "Aluminum"}', schema, [{"type": "mentions_name", "field": "t"}], ALUMINUM) == (
        {"t": "Aluminum"}, [])
    _, errs = check_answer('{"t": "Steel"}', schema, [{"type": "mentions_name", "field": "t"}], ALUMINUM)
    assert errs == ["t: must mention the material name 'Aluminum'"]


# ---- each validator rejects its defect ------------------------------------------------------------


def test_words():
    v = {"type": "words", "field": "before", "min": 3, "max": 5}
    assert errors({"before": "one two three"}, v) == []
    assert errors({"before": "one two"}, v) == ["before: has 2 words, expected at least 3"]
    assert errors({"before": "a b c d e f"}, v) == ["before: has 6 words, expected at most 5"]
    assert errors({}, v) == ["before: missing"]
    assert errors({"before": 3}, v) == ["before: expected a string, got int"]


def test_words_on_each_item_and_nested_paths():
    v = {"type": "words", "field": "bullets[]", "min": 2}
    assert errors({"bullets": ["two words", "one"]}, v) == ["bullets[1]: has 1 words, expected at least 2"]
    v = {"type": "words", "field": "faq[].answer", "max": 2}
    assert errors({"faq": [{"answer": "short one"}, {"answer": "a bit too long"}]}, v) == [
        "faq[1].answer: has 4 words, expected at most 2"]


def test_chars():
    v = {"type": "chars", "field": "description", "min": 5, "max": 10}
    assert errors({"description": "12345"}, v) == []
    assert errors({"description": "1234"}, v) == ["description: has 4 characters, expected at least 5"]
    assert errors({"description": "x" * 11}, v) == ["description: has 11 characters, expected at most 10"]


def test_chars_without_field_applies_to_every_string():
    v = {"type": "chars", "max": 3}
    assert errors({"a": "abc", "b": ["abcd"]}, v) == ["b[0]: has 4 characters, expected at most 3"]


def test_count():
    v = {"type": "count", "field": "bullets", "exact": 4}
    assert errors({"bullets": [1, 2, 3, 4]}, v) == []
    assert errors({"bullets": [1, 2, 3]}, v) == ["bullets: has 3 items, expected exactly 4"]
    assert errors({"bullets": "x"}, v) == ["bullets: expected a list, got str"]
    v = {"type": "count", "field": "tags", "min": 2, "max": 3}
    assert errors({"tags": ["a"]}, v) == ["tags: has 1 items, expected at least 2"]
    assert errors({"tags": ["a", "b", "c", "d"]}, v) == ["tags: has 4 items, expected at most 3"]


def test_pattern():
    v = {"type": "pattern", "field": "tags[]", "regex": "^[a-z0-9]+(?:[ -][a-z0-9]+)*$"}
    assert errors({"tags": ["laser cleaning", "1064-nm"]}, v) == []
    [e] = errors({"tags": ["ok", "Not OK"]}, v)
    assert e.startswith("tags[1]: 'Not OK' does not match the pattern")
    v = {"type": "pattern", "regex": "^[^<>]*$", "message": "must not contain markup"}
    assert errors({"a": "<b>x</b>"}, v) == ["a: '<b>x</b>' must not contain markup"]


def test_mentions_name():
    v = {"type": "mentions_name", "field": "title"}
    assert errors({"title": "Laser cleaning of aluminum"}, v) == []  # any case
    assert errors({"title": "Laser cleaning of metal"}, v) == ["title: must mention the material name 'Aluminum'"]
    assert errors({"x": "nothing", "y": ["Aluminum here"]}, {"type": "mentions_name"}) == []


@pytest.mark.parametrize("text", [
    "Cleaning parameters TBD.", "TODO: write this", "Lorem ipsum dolor", "Cleans [MATERIAL] well",
    "Cleans {{ material.name }} well", "Fluence XXX J/cm²", "Result: {% if x %}",
])
def test_no_placeholders_rejects(text):
    [e] = errors({"summary": text}, {"type": "no_placeholders"})
    assert e.startswith("summary: contains a placeholder")


def test_no_placeholders_accepts_normal_text():
    assert errors({"summary": "Todos los metales: a to-do list (sic) is fine; nor is 'tbdx' or 'xxxl'."},
                  {"type": "no_placeholders"}) == []


@pytest.mark.parametrize("text", [
    "Sure, here is the caption.", "Of course! Aluminum is…", "Certainly. The surface…",
    "Here is a caption for aluminum.", "Here's the result", "Here are four bullets",
    "As an AI, I cannot see images.", "  **Sure!** The surface…",
])
def test_no_preamble_rejects(text):
    [e] = errors({"before": text}, {"type": "no_preamble"})
    assert e.startswith("before: starts with chatty preamble")


def test_no_preamble_accepts_content():
    v = {"type": "no_preamble"}
    assert errors({"before": "Surely the oxide layer is visible.", "after": "Heretofore hidden grains show."}, v) == []


# ---- grounded numbers ----------------------------------------------------------------------------------


GROUNDED = {"type": "grounded_numbers"}


@pytest.mark.parametrize("text", [
    "Cleaned at 1064 nm with 0.8–2.5 J/cm².",
    "A fluence between 0.8 and 2.5 J/cm² and pulses from 10 to 100 ns.",
    "Fluence 0.8-2.5 J/cm2, 20-100 kHz, 50 W.",
    "Density 2.7 g/cm³ (2.70 g/cm3); melts at 660 °C, i.e. 933 K.",
    "Conductivity 237 W/mK, specific heat 0.9 J/(g·K), reflectivity 91%.",
    "A 50 µm spot (50 um), a 1064-nm fiber laser, hardness 25 HB.",
    "The wavelength of 1.064 µm is common.",
    "Aluminum parts cleaned with 4 passes, 1st at 1064 nm.",  # counts and ordinals are not claims
    "A wavelength of 1064, a 91 % reflectivity at 1064nm.",
    "2.70 ± 0.05 g/cm³",
])
def test_grounded_numbers_accepts_values_from_the_data(text):
    assert errors({"text": text}, GROUNDED) == []


@pytest.mark.parametrize("text, bad", [
    ("Fluence of 3.5 J/cm².", "3.5 J/cm²"),
    ("Fluence 0.5-2.5 J/cm².", "0.5 J/cm²"),
    ("Fluence between 0.8 and 4 J/cm².", "4 J/cm²"),
    ("Melts at 700 °C.", "700 °C"),
    ("Conductivity 240 W/(m·K).", "240 W/(m·K)"),
    ("A 532 nm laser.", "532 nm"),
    ("Tensile strength 310 MPa.", "310 MPa"),
    ("Density 2.9 g/cm³.", "2.9 g/cm³"),
    ("Pulses of 5 ns.", "5 ns"),
])
def test_grounded_numbers_rejects_numbers_not_in_the_data(text, bad):
    [e] = errors({"text": text}, GROUNDED)
    assert e.startswith("text: ") and repr(bad) in e


def test_grounded_numbers_tolerance_and_printed_value():
    assert errors({"t": "about 661 °C"}, GROUNDED) == []  # within 0.5 % of 660.3
    assert errors({"t": "0.90 J/(g·K)"}, GROUNDED) == []  # 0.897 printed with 2 decimals
    assert errors({"t": "237.0 W/(m·K)"}, GROUNDED) == []
    assert errors({"t": "250 W/(m·K)"}, GROUNDED) != []
    strict = {"type": "grounded_numbers", "tolerance": 0}
    assert errors({"t": "661 °C"}, strict) != []


def test_grounded_numbers_field_and_material_without_data():
    assert errors({"a": "10 ns", "b": "999 ns"}, {"type": "grounded_numbers", "field": "a"}) == []
    [e] = errors({"a": "10 ns"}, GROUNDED, material={"name": "X"})
    assert "no quantity in ns" in e


def test_numbers_with_units_extraction():
    found = numbers_with_units("between 0.8 and 2.5 J/cm², −40 °C, 1,064 nm and 20 kHz")
    assert [(w, v, u) for w, v, _, u in found] == [
        ("0.8 J/cm²", 0.8, "J/cm²"), ("2.5 J/cm²", 2.5, "J/cm²"), ("−40 °C", -40.0, "°C"),
        ("1,064 nm", 1064.0, "nm"), ("20 kHz", 20.0, "kHz")]
    assert numbers_with_units("Ti6Al4V, CO2 lasers, 3 Ways, 5 Kelvins") == []


# ---- specs -----------------------------------------------------------------------------------------------


def test_specs_of_the_shipped_components_are_valid():
    specs = [
        {"type": "words", "field": "before", "min": 25, "max": 70},
        {"type": "chars", "field": "description", "min": 80, "max": 158},
        {"type": "count", "field": "bullets", "exact": 4},
        {"type": "pattern", "field": "tags[]", "regex": "^[a-z0-9]+(?:[ -][a-z0-9]+)*$"},
        {"type": "mentions_name", "field": "title"},
        {"type": "no_placeholders"}, {"type": "no_preamble"}, {"type": "grounded_numbers"},
    ]
    assert validate_validator_specs(specs) == []


@pytest.mark.parametrize("spec, fragment", [
    ({"type": "wordz", "field": "x", "min": 1}, "unknown validator type 'wordz'"),
    ({"field": "x"}, "unknown validator type None"),
    ("words", "must be a mapping"),
    ({"type": "words", "field": "x"}, "give min and/or max"),
    ({"type": "words", "field": "x", "min": 5, "max": 2}, "min 5 is greater than max 2"),
    ({"type": "words", "field": "x", "min": -1}, "min must be a non-negative integer"),
    ({"type": "count", "min": 1}, "missing required key 'field'"),
    ({"type": "count", "field": "x", "exact": 2, "min": 1}, "exact excludes min/max"),
    ({"type": "pattern", "field": "x"}, "missing required key 'regex'"),
    ({"type": "pattern", "regex": "("}, "invalid regex"),
    ({"type": "words", "field": "a..b", "min": 1}, "field must be a path"),
    ({"type": "no_preamble", "fields": "x"}, "unknown key 'fields'"),
    ({"type": "grounded_numbers", "tolerance": 2}, "tolerance must be"),
])
def test_bad_specs_are_reported(spec, fragment):
    messages = validate_validator_specs([spec])
    assert any(fragment in m for m in messages), messages
    assert all(m.startswith("validators[0]") for m in messages)


def test_specs_must_be_a_list():
    assert validate_validator_specs({"type": "words"}) == ["validators must be a list of mappings"]
    assert validate_validator_specs(None) == []


# ---- every number, other materials, people, markup, commerce (the defaults) ---------------------

from generator.llm.validators import SiteFacts, effective_validators  # noqa: E402

FACTS = SiteFacts(materials=("Aluminum", "Aluminum 6061", "Copper", "Lead", "Stainless Steel 304", "Douglas Fir"),
                  people=("Alessandro Moretti", "Yi-Chun Lin"),
                  categories={"metal": ("Metals", "Nanosecond fibre lasers at 1064 nm, 532 nm for some.")},
                  site_texts=("Laser Cleaning Materials", "Reference pages on 109 materials."))


def with_facts(text: str, kind: str) -> list[str]:
    return validate_output({"text": text}, ANY, [{"type": kind, "facts": FACTS}], ALUMINUM)


def default_errors(text: str, material=ALUMINUM) -> list[str]:
    return validate_output({"text": text}, ANY, effective_validators([], FACTS), material)


@pytest.mark.parametrize("text, named", [
    ("Used since 1995 in aerospace.", "'1995'"),
    ("Cleaned in 12 passes.", "'12'"),
    ("Order today for just $89.99.", "'$89.99' is a price"),
    ("It costs 49 EUR per kilogram.", "'49 EUR' is a price"),
    ("Reflectivity drops by 35%.", "'35 %'"),
    ("Aluminum 6061 needs less.", "'6061'"),
])
def test_grounded_numbers_checks_every_number_and_names_it(text, named):
    found = with_facts(text, "grounded_numbers")
    assert found and named in found[0] and found[0].validator == "grounded_numbers"


@pytest.mark.parametrize("text", [
    "Cleaned in 2 passes, the 1st at 1064.",     # counts, ordinals, a data value without its unit
    "A 532 nm source suits some.",                 # the category's description gives 532 nm
    "One of 109 materials.",                       # the site's description
    "Alloys such as Ti-6Al-4V and H13 differ.",    # digits inside tokens are not numbers
])
def test_grounded_numbers_accepts_counts_and_numbers_the_prompt_gave(text):
    assert with_facts(text, "grounded_numbers") == []


@pytest.mark.parametrize("text, found", [
    ("Unlike Copper, it reflects well.", "'Copper'"),
    ("The same settings work for stainless steel parts.", "'stainless steel'"),
    ("Aluminum 6061 behaves the same.", "'Aluminum 6061'"),
    ("The coating contains Lead traces.", "'Lead'"),
    ("Reviewed by Test Author.", "'Test Author'"),
    ("Dr. Weber recommends it.", "'Weber'"),
    ("Sarah Chen notes the oxide is thin.", "'Sarah Chen'"),
    ("Author: Mark Hale", "'Mark Hale'"),
    ("John Doe approved it.", "'John Doe'"),
])
def test_no_foreign_entities_names_what_it_found(text, found):
    [e] = [e for e in default_errors(text) if e.validator == "no_foreign_entities"]
    assert found in e


@pytest.mark.parametrize("text", [
    "Laser Cleaning Aluminum: Fluence, Wavelength and Power",  # title case is not a person
    "Written by Alessandro Moretti and Yi-Chun Lin.",          # the people of data/
    "Oxide layers can lead to poor adhesion.",                  # "lead", the verb
    "Standards such as ISO and ASTM apply; Nd:YAG lasers work.",
    "Fibre lasers suit Metals.",
])
def test_no_foreign_entities_accepts_the_site_own_words(text):
    assert [e for e in default_errors(text) if e.validator == "no_foreign_entities"] == []


def test_a_name_the_material_data_uses_is_not_foreign():
    material = {**ALUMINUM, "description": "Lighter than Copper."}
    assert [e for e in default_errors("Lighter than Copper.", material) if e.validator == "no_foreign_entities"] == []
    steel = {"name": "Stainless Steel 304", "category": "metal"}
    assert default_errors("Stainless Steel 304 differs from other stainless steel grades.", steel) == []


@pytest.mark.parametrize("text, what", [
    ("<script>alert(1)</script>", "an HTML tag"), ("ends </script>", "an HTML tag"),
    ("< script >x", "an HTML tag"), ("x onerror=alert(1)", "an event-handler attribute"),
    ("go javascript:alert(1)", "a script URL"), ("&lt;b&gt;", "an HTML entity"),
    ("${price}", "template syntax"), ("see https://example.com", "a link"), ("[a](b)", "a markdown link"),
])
def test_plain_text_rejects_markup(text, what):
    [e] = errors({"text": text}, {"type": "plain_text"})
    assert what in e and e.validator == "plain_text"


def test_plain_text_accepts_comparisons():
    assert errors({"text": "Fluence < 2.5 J/cm² and spot > 50 µm; 3 < 5."}, {"type": "plain_text"}) == []


@pytest.mark.parametrize("text", ["Buy now.", "Order today.", "Free shipping.", "For just a little.",
                                  "A 10% discount.", "Best price here.", "Pay $5.", "Only 9 USD."])
def test_no_commerce_rejects_sales_wording(text):
    assert errors({"text": text}, {"type": "no_commerce"})


@pytest.mark.parametrize("text", ["In order to avoid damage, keep it low.", "An order of magnitude less.",
                                  "A cost-effective alternative to blasting.", "Lasers offer precise control."])
def test_no_commerce_accepts_ordinary_words(text):
    assert errors({"text": text}, {"type": "no_commerce"}) == []


def test_every_error_names_its_validator():
    output, errs = check_answer('{"text": "Sure! <b>TBD</b>"}', ANY, effective_validators([], FACTS), ALUMINUM)
    assert {e.validator for e in errs} == {"no_preamble", "no_placeholders", "plain_text"}
    assert parse_answer("nope")[1][0].validator == "json"
