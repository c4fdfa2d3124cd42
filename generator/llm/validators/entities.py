"""no_foreign_entities: no other material of the site, and no person the site's data does not name.

Other materials: the site's own material names, and their families without the grade ("Stainless
Steel" of "Stainless Steel 304"), matched as whole words (any case; names that
are also common English words, such as Lead, Tin or Slate, only when capitalised mid-sentence).
A name inside this material's own name ("Aluminum" on "Aluminum 6061"), or one its own data or
category texts use, is not foreign.

People, by heuristics (there is no list of every person): a title before a capitalised name
("Dr. Weber", "Prof. Anna Berg"), an attribution ("Author: Mark Hale", "written by ..."), a
capitalised pair whose first word is a common given name ("Sarah Chen"), a pair before a
reporting verb or "et al." ("Berg Lindqvist says"), and placeholder people ("Test Author",
"John Doe"). A name every word of which belongs to a person named in data/ is fine.
"""

from __future__ import annotations

import re
from typing import Any

from .base import own_texts, quote, texts

# Names that are also everyday words: matched only capitalised, not at a sentence start.
_COMMON_WORDS = frozenset({"lead", "tin", "slate", "concrete", "spruce", "ash", "gold", "silver", "pine",
                           "cherry", "tuff", "elm", "stucco", "zinc", "silicon"})

_GIVEN = frozenset("""
Aaron Abdul Adam Adrian Ahmed Aisha Akira Alan Albert Alejandro Alex Alexander Alexandra Alice
Alicia Alison Amanda Amelia Amir Amy Ana Andre Andrea Andrew Angela Anita Ann Anna Anne Anthony
Antonio Arjun Arthur Ashley Barbara Ben Benjamin Bernard Beth Brandon Brian Bruce Bruno Carl Carla
Carlos Caroline Catherine Charles Charlie Chen Chloe Chris Christian Christina Christine
Christopher Claire Claudia Daniel Daniela David Deborah Dennis Diana Diego Dmitri Donald Doug
Dylan Edward Elena Elizabeth Ellen Emily Emma Eric Erik Ethan Eva Fatima Felix Fernando Francesca
Francesco Francis Franz Gary George Georg Gerald Giovanni Giulia Greg Gregory Hana Hannah Hans
Harold Harry Heinrich Helen Henry Hiroshi Hugo Ian Igor Ingrid Irina Isaac Isabel Isabella Ivan
Jack Jacob James Jan Jane Janet Jason Javier Jean Jeff Jeffrey Jennifer Jens Jessica Joan Joe
Johann Johannes John Jonathan Jorge Jose Joseph Joshua Juan Judith Julia Julian Julie Jun Karen
Karl Katherine Kathleen Kenji Kenneth Kevin Kim Klaus Kumar Larry Laura Lauren Lea Leo Leon
Linda Lisa Liu Lucas Lucia Luis Luca Lukas Maria Marie Marco Margaret Mario Marta Martin Mary
Matthew Matteo Maya Mehmet Melissa Michael Michelle Miguel Mohammed Muhammad Nancy Natalie
Nathan Nicholas Nicole Nina Noah Olga Oliver Olivia Omar Oscar Pablo Paolo Patricia Patrick Paul
Paula Peter Philip Pierre Priya Rachel Rafael Rahul Raj Rebecca Richard Robert Roberto Ronald
Ryan Sam Samuel Sandra Sara Sarah Satoshi Scott Sean Sebastian Sergei Sharon Sofia Sophie
Stefan Stephanie Stephen Steven Susan Takashi Thomas Timothy Tom Tomas Victoria Vincent Wang
Wei Wolfgang Xavier Yuki Yusuf Zhang Zoe
""".split())

_CAP = r"[A-Z][a-z]+(?:[-'][A-Z]?[a-z]+)?"
_PAIR = rf"{_CAP}(?:\s+[A-Z]\.)?\s+{_CAP}"
_PEOPLE = [
    re.compile(r"\b(?:test|sample|example|dummy|fake|demo|placeholder|anonymous|unknown)\s+"
               r"(?:author|user|writer|editor|person|name|reviewer|contributor|expert|engineer)s?\b", re.I),
    re.compile(r"\b(?:john|jane|joe|richard|max|erika)\s+(?:doe|roe|smith|public|mustermann|musterfrau)\b"
               r"|\b(?:first\s*name\s+last\s*name|firstname\s+lastname|author\s+name|your\s+name|foo\s+bar)\b",
               re.I),
    re.compile(rf"(?:\b(?:Dr|Prof|Mr|Mrs|Ms|Mx|Dipl\.-Ing|Ing)\.?|\b(?:Professor|Doctor|Sir|Dame))\s+"
               rf"(?P<name>{_CAP}(?:\s+{_CAP})?)"),
    re.compile(rf"(?i:\b(?:(?:authored|written|reviewed|edited|compiled|prepared|contributed|photographed|quoted|"
               rf"photo|image|picture)\s+by|author\s*:|by\s*:|credits?\s*:|credited\s+to|courtesy\s+of|"
               rf"according\s+to)\s*)(?P<name>{_PAIR})"),
    re.compile(rf"\b(?P<name>{_PAIR})(?:,|\s)\s*(?:et al\b|says\b|said\b|notes\b|noted\b|explains\b|"
               rf"explained\b|recommends\b|reports\b|reported\b|writes\b|wrote\b|argues\b|suggests\b|advises\b)"),
    re.compile(rf"\b(?P<name>(?:{'|'.join(sorted(_GIVEN))})(?:\s+[A-Z]\.)?\s+{_CAP})\b"),
]


_TOKEN = re.compile(r"[^\W_]+")  # runs of letters and digits: "Ti-6Al-4V" -> ti, 6al, 4v


def name_key(name: str) -> tuple[str, ...]:
    return tuple(m.group(0).casefold() for m in _TOKEN.finditer(name))


def family(name: str) -> str:
    """A name without its grade or alloy code: "Stainless Steel 304" -> "Stainless Steel"."""
    words = name.split()
    return " ".join(words[:-1]) if len(words) > 1 and re.search(r"\d", words[-1]) else name


def material_index(names: tuple[str, ...]) -> tuple[dict[tuple[str, ...], str], int]:
    """Token key -> name, for every material name and family (looked up by n-grams: the cost
    of a text does not grow with the number of materials), and the longest key's length."""
    index = {name_key(n): n for m in names for n in (family(m), m) if name_key(n)}
    return index, max(map(len, index), default=0)


def _contains(key: tuple[str, ...], part: tuple[str, ...]) -> bool:
    return bool(part) and any(key[i:i + len(part)] == part for i in range(len(key) - len(part) + 1))


def _foreign_materials(text: str, indexed: tuple[dict, int], own: str) -> list[tuple[tuple[str, ...], str]]:
    """(key, as written) of each other material named in `text`, longest names first at each word.
    Words of this material's own name are skipped, except inside a longer name that holds it
    ("Aluminum 6061" on the Aluminum page)."""
    own_key, family_key = name_key(own), name_key(family(own))
    tokens = list(_TOKEN.finditer(text))
    words = [t.group(0).casefold() for t in tokens]
    covered = {j for i in range(len(words)) if own_key and tuple(words[i:i + len(own_key)]) == own_key
               for j in range(i, i + len(own_key))}
    index, longest = indexed
    found = []
    for i in range(len(words)):
        for n in range(min(longest, len(words) - i), 0, -1):
            key = tuple(words[i:i + n])
            if key not in index:
                continue
            if key in (own_key, family_key):
                break
            if not _contains(key, own_key) and any(j in covered for j in range(i, i + n)):
                continue
            start, end = tokens[i].start(), tokens[i + n - 1].end()
            before = text[:start].rstrip()
            if n == 1 and key[0] in _COMMON_WORDS and not (
                    text[start].isupper() and before and before[-1] not in ".!?:\"'“("):
                continue  # "can lead to", or a capital that only starts a sentence
            found.append((key, text[start:end]))
            break
    return found


def _people_words(facts: Any) -> set[str]:
    return {w.casefold() for person in (facts.people if facts else ()) for w in re.split(r"[\s.]+", person) if w}


def v_no_foreign_entities(output: dict, spec: dict, material: dict) -> list[str]:
    facts = spec.get("facts")
    own = " ".join(str(material.get("name") or "").split())
    index = facts.material_index if facts is not None else ({}, 0)
    allowed_texts = own_texts(material, facts)
    allowed = {key for t in allowed_texts for key, _ in _foreign_materials(t, index, own)}
    allowed_folded = " ".join(allowed_texts).casefold()
    known_people = _people_words(facts)
    found, errors = texts(output, spec)
    for path, text in found:
        foreign = [written for key, written in _foreign_materials(text, index, own) if key not in allowed]
        if foreign:
            errors.append(f"{path}: names another material of the site, {foreign[0]!r}; "
                          f"write only about {own or 'this material'}")
        person = _unknown_person(text, known_people, allowed_folded)
        if person:
            errors.append(f"{path}: names a person, {person!r}, whom the site's data does not list; "
                          f"name no people")
    return errors


def _unknown_person(text: str, known_people: set[str], allowed: str) -> str | None:
    """The first person named in `text` who is neither in data/ nor in the material's own texts."""
    for rx in _PEOPLE:
        for m in rx.finditer(text):
            if "name" not in rx.groupindex:
                return " ".join(m.group(0).split())  # a placeholder person
            name = " ".join(m.group("name").split())
            words = [w.casefold() for w in re.split(r"[\s.]+", name) if w]
            if not (all(w in known_people for w in words) or name.casefold() in allowed):
                return name
    return None
