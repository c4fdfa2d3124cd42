"""grounded_numbers: every number an answer states must be one the material's data holds.

Numbers with a unit are compared with the data's quantities of the same dimension, converted
(°C/K/°F, nm/µm/mm, J/cm²/mJ/cm², ...), within a relative tolerance or as the same printed value
(2.7 == 2.70). A range's ends must fall within the data's range. A number without a unit must be
a number the material's data holds (its values, or a number written in one of its strings, e.g.
"6061" of "Aluminum 6061"), or one its category's or the site's texts give. A price ($89.99,
49 EUR) is never grounded unless the data writes that very price.

Not claims, so not checked: integers 0-10 without a unit (counts: "2 passes", "4 key points"),
ordinals ("1st", "3rd"), digits inside a token ("Ti-6Al-4V", "CO2", "H13"), and spelled-out numbers.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from .base import own_texts, texts as _texts

@dataclass(frozen=True)
class _Unit:
    dim: str
    factor: float = 1.0  # to the dimension's base unit
    offset: float = 0.0  # base = value * factor + offset (temperatures)


def _canon(unit: str) -> str:
    u = unit.strip()
    for a, b in (("μ", "µ"), ("ºC", "°C"), ("℃", "°C"), ("⁻¹", "-1"), ("⁻²", "-2"), ("⁻³", "-3"),
                 ("²", "2"), ("³", "3"), ("^", ""), ("⋅", "·"), ("*", "·"), ("•", "·")):
        u = u.replace(a, b)
    return re.sub(r"\s+", "", u)


def _unit_table() -> tuple[dict[str, _Unit], list[str]]:
    """canonical spelling -> unit, and every textual spelling (for the number+unit regex)."""
    micro = ("µ", "μ", "u")
    base: list[tuple[list[str], _Unit]] = [
        (["nm"], _Unit("length", 1e-9)), (["µm", "micron", "microns"], _Unit("length", 1e-6)),
        (["mm"], _Unit("length", 1e-3)), (["cm"], _Unit("length", 1e-2)),
        (["fs"], _Unit("time", 1e-15)), (["ps"], _Unit("time", 1e-12)), (["ns"], _Unit("time", 1e-9)),
        (["µs"], _Unit("time", 1e-6)), (["ms"], _Unit("time", 1e-3)),
        (["J/cm²", "J cm⁻²", "J·cm⁻²"], _Unit("fluence", 1e4)),
        (["mJ/cm²", "mJ cm⁻²"], _Unit("fluence", 10.0)), (["J/m²"], _Unit("fluence", 1.0)),
        (["W/cm²"], _Unit("irradiance", 1e4)), (["kW/cm²"], _Unit("irradiance", 1e7)),
        (["MW/cm²"], _Unit("irradiance", 1e10)), (["GW/cm²"], _Unit("irradiance", 1e13)),
        (["J"], _Unit("energy", 1.0)), (["mJ"], _Unit("energy", 1e-3)), (["µJ"], _Unit("energy", 1e-6)),
        (["kJ"], _Unit("energy", 1e3)),
        (["eV"], _Unit("electronvolt", 1.0)), (["meV"], _Unit("electronvolt", 1e-3)),
        (["W"], _Unit("power", 1.0)), (["mW"], _Unit("power", 1e-3)), (["kW"], _Unit("power", 1e3)),
        (["MW"], _Unit("power", 1e6)),
        (["Hz"], _Unit("frequency", 1.0)), (["kHz"], _Unit("frequency", 1e3)),
        (["MHz"], _Unit("frequency", 1e6)), (["GHz"], _Unit("frequency", 1e9)),
        (["g/cm³", "g cm⁻³", "g·cm⁻³", "g/cc"], _Unit("density", 1000.0)),
        (["kg/m³", "kg m⁻³", "kg·m⁻³"], _Unit("density", 1.0)),
        (["Pa"], _Unit("pressure", 1.0)), (["kPa"], _Unit("pressure", 1e3)),
        (["MPa"], _Unit("pressure", 1e6)), (["GPa"], _Unit("pressure", 1e9)),
        (["W/(m·K)", "W/m·K", "W/mK", "W/(mK)", "W/m/K", "W/(m-K)", "W/m-K", "W m⁻¹ K⁻¹", "W·m⁻¹·K⁻¹",
          "W/(m K)", "W/m K"], _Unit("thermal_conductivity", 1.0)),
        (["J/(g·K)", "J/g·K", "J/gK", "J/(gK)", "J/g/K", "J/(g-K)", "J/g-K", "J/(g K)", "J g⁻¹ K⁻¹",
          "J·g⁻¹·K⁻¹", "kJ/(kg·K)", "kJ/kg·K", "kJ/kgK", "kJ/(kg K)", "kJ/kg/K"], _Unit("specific_heat", 1000.0)),
        (["J/(kg·K)", "J/kg·K", "J/kgK", "J/(kgK)", "J/kg/K", "J/(kg-K)", "J/kg-K", "J/(kg K)",
          "J kg⁻¹ K⁻¹", "J·kg⁻¹·K⁻¹"], _Unit("specific_heat", 1.0)),
        (["°C", "ºC", "℃", "degC"], _Unit("temperature", 1.0, 273.15)),
        (["K"], _Unit("temperature", 1.0, 0.0)),
        (["°F", "ºF"], _Unit("temperature", 5.0 / 9.0, 273.15 - 32.0 * 5.0 / 9.0)),
        (["%"], _Unit("percent", 1.0)),
        (["HB", "HBW", "HBS"], _Unit("hardness_brinell")), (["HV"], _Unit("hardness_vickers")),
        (["HRC"], _Unit("hardness_rockwell_c")), (["HRB"], _Unit("hardness_rockwell_b")),
        (["HK"], _Unit("hardness_knoop")), (["Mohs"], _Unit("hardness_mohs")),
        (["mm/s"], _Unit("speed", 1e-3)), (["m/s"], _Unit("speed", 1.0)),
    ]
    table: dict[str, _Unit] = {}
    spellings: set[str] = set()
    for names, unit in base:
        for name in names:
            variants = {name}
            if "µ" in name:
                variants |= {name.replace("µ", m) for m in micro}
            for sup, plain in (("²", ("2", "^2")), ("³", ("3", "^3"))):
                for v in list(variants):
                    if sup in v:
                        variants |= {v.replace(sup, p) for p in plain}
            for v in list(variants):
                if "·" in v:
                    variants |= {v.replace("·", d) for d in ("⋅", "*", " ", "-", ".")}
            for v in variants:
                spellings.add(v)
                table.setdefault(_canon(v), unit)
    return table, sorted(spellings, key=len, reverse=True)


_UNITS, _SPELLINGS = _unit_table()
_UNIT_RX = "(?:" + "|".join(re.escape(s) for s in _SPELLINGS) + ")"
_NUM_RX = r"(?<![\w.])(?:[-−](?=\d))?(?:\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?)"
_SP = r"[ \t\u00a0\u2009\u202f]?"
_END = r"(?![\w/²³^µμ°]|-[A-Za-z])"
_SINGLE = re.compile(rf"(?P<a>{_NUM_RX}){_SP}-?(?P<unit>{_UNIT_RX}){_END}")
_RANGE = re.compile(
    rf"(?i:\bbetween\s+)?(?P<a>{_NUM_RX})(?:{_SP}(?P<ua>{_UNIT_RX}))?\s*"
    rf"(?P<sep>–|—|‑|-|(?i:\bto\b|\band\b|\bor\b)|±|\+/-)\s*"
    rf"(?P<b>{_NUM_RX}){_SP}-?(?P<unit>{_UNIT_RX}){_END}")


@dataclass(frozen=True)
class _Quantity:
    path: str
    unit: _Unit
    unit_text: str
    value: float | None = None
    lo: float | None = None
    hi: float | None = None

    def describe(self) -> str:
        if self.value is not None:
            return f"{self.path} {_fmt(self.value)} {self.unit_text}"
        return f"{self.path} {_fmt(self.lo)}–{_fmt(self.hi)} {self.unit_text}"


def _fmt(x: float | None) -> str:
    if x is None:
        return "?"
    return f"{x:g}"


def _num(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        return None
    return float(v)


def _lookup_unit(text: str) -> _Unit:
    return _UNITS.get(_canon(text)) or _Unit("unit:" + _canon(text))


def material_quantities(material: Any) -> list[_Quantity]:
    """Every {value, unit} / {min, max, unit} mapping anywhere in the material's data."""
    out: list[_Quantity] = []

    def walk(node: Any, path: str) -> None:
        if isinstance(node, dict):
            unit = node.get("unit")
            if isinstance(unit, str) and unit.strip():
                u = _lookup_unit(unit)
                value, lo, hi = _num(node.get("value")), _num(node.get("min")), _num(node.get("max"))
                if value is not None:
                    out.append(_Quantity(path, u, unit.strip(), value=value))
                if lo is not None or hi is not None:
                    out.append(_Quantity(path, u, unit.strip(), lo=lo if lo is not None else hi,
                                         hi=hi if hi is not None else lo))
            for k, v in node.items():
                walk(v, f"{path}.{k}" if path else str(k))
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, f"{path}[{i}]")

    walk(material, "")
    return out


def _parse_num(s: str) -> tuple[float, int]:
    s = s.replace("−", "-").replace(",", "")
    decimals = len(s.split(".", 1)[1]) if "." in s else 0
    return float(s), decimals


def _convert(x: float, src: _Unit, dst: _Unit) -> float:
    return ((x * src.factor + src.offset) - dst.offset) / dst.factor


def _matches(x: float, decimals: int, unit: _Unit, q: _Quantity, tol: float) -> bool:
    def close(v: float) -> bool:
        if math.isclose(x, v, rel_tol=tol, abs_tol=1e-12):
            return True
        return abs(round(v, decimals) - x) <= 1e-9 * max(1.0, abs(x))  # same printed value: 2.7 == 2.70

    if q.value is not None:
        return close(_convert(q.value, q.unit, unit))
    lo, hi = sorted((_convert(q.lo, q.unit, unit), _convert(q.hi, q.unit, unit)))  # type: ignore[arg-type]
    return (lo - tol * abs(lo)) <= x <= (hi + tol * abs(hi)) or close(lo) or close(hi)


def _unit_claims(text: str) -> tuple[list[tuple[int, str, float, int, str]], list[tuple[int, int]]]:
    """(start, as written, value, decimals, unit) of every number with a unit, and the spans taken."""
    found: list[tuple[int, str, float, int, str]] = []
    taken: list[tuple[int, int]] = []
    for m in _RANGE.finditer(text):
        unit = m.group("unit")
        a, b = m.group("a"), m.group("b")
        ua = m.group("ua") or unit
        va, da = _parse_num(a)
        found.append((m.start("a"), f"{a} {ua}", va, da, ua))
        if m.group("sep") not in ("±", "+/-"):
            vb, db = _parse_num(b)
            found.append((m.start("b"), f"{b} {unit}", vb, db, unit))
        taken.append(m.span())
    for m in _SINGLE.finditer(text):
        if any(s <= m.start() < e for s, e in taken):
            continue
        v, d = _parse_num(m.group("a"))
        found.append((m.start(), f"{m.group('a')} {m.group('unit')}", v, d, m.group("unit")))
        taken.append(m.span())
    return sorted(found, key=lambda f: f[0]), taken


def numbers_with_units(text: str) -> list[tuple[str, float, int, str]]:
    """(as written, value, decimals, unit) for every number with a unit, in text order; a range's
    first end takes the second end's unit; the tolerance of "x ± y unit" is not a claim of its own."""
    return [f[1:] for f in _unit_claims(text)[0]]


_AMOUNT = r"\d+(?:[.,]\d+)*"
_CURRENCY_WORDS = r"(?:USD|EUR|GBP|JPY|CHF|CAD|AUD|CNY|INR|dollars?|euros?|pounds|cents|bucks)"
_MONEY = re.compile(
    rf"(?:(?:US|A|C)?[$€£¥₹]\s?{_AMOUNT}(?:\s?(?:[kKmM]|USD|EUR|GBP)\b)?"
    rf"|\b(?:USD|EUR|GBP|JPY|CHF|CAD|AUD|CNY|INR|Rs\.?)\s?{_AMOUNT}"
    rf"|{_AMOUNT}\s?{_CURRENCY_WORDS}\b)")
_PLAIN = re.compile(rf"{_NUM_RX}(?!\w|[.,]\d)")
COUNT_LIMIT = 10  # integers up to this, without a unit, are counts ("2 passes"), not data


def _money(text: str) -> list[tuple[int, int, str]]:
    return [(m.start(), m.end(), m.group(0).strip()) for m in _MONEY.finditer(text)]


def _plain_numbers(text: str, taken: list[tuple[int, int]]) -> list[tuple[int, str, float, int]]:
    out = []
    for m in _PLAIN.finditer(text):
        if any(s <= m.start() < e for s, e in taken):
            continue
        value, decimals = _parse_num(m.group(0))
        out.append((m.start(), m.group(0), value, decimals))
    return out


class _Grounds:
    """What a material's numbers may be: its quantities (with units) and every plain number
    its data, its category's and the site's texts hold."""

    def __init__(self, material: dict, facts: Any):
        self.quantities = material_quantities(material)
        self.values: list[float] = []
        self.prices: set[str] = set()

        def walk(node: Any) -> None:
            if isinstance(node, dict):
                for k, v in node.items():
                    self.values += [n for _, _, n, _ in _plain_numbers(str(k).replace("_", " "), [])]
                    walk(v)
            elif isinstance(node, list):
                for v in node:
                    walk(v)
            elif (v := _num(node)) is not None:
                self.values.append(v)
        walk(material)
        for text in own_texts(material, facts):
            for _, _, value, _, unit_text in _unit_claims(text)[0]:
                self.quantities.append(_Quantity("(text)", _lookup_unit(unit_text), unit_text, value=value))
            self.prices |= {" ".join(w.split()) for *_, w in _money(text)}
            self.values += [v for _, _, v, _ in _plain_numbers(text, [])]

    def plain(self, x: float, decimals: int, tol: float) -> bool:
        if decimals == 0 and 0 <= x <= COUNT_LIMIT:
            return True
        for v in self.values:  # the same number, or the same printed value (2.7 == 2.70)
            if (math.isclose(abs(x), abs(v), rel_tol=tol, abs_tol=1e-12)
                    or abs(round(abs(v), decimals) - abs(x)) <= 1e-9 * max(1.0, abs(x))):
                return True
        for q in self.quantities:  # a unit left out: "a wavelength of 1064" (a range's ends only)
            ends = [q.value] if q.value is not None else [q.lo, q.hi]
            if any(_matches(x, decimals, q.unit, _Quantity(q.path, q.unit, q.unit_text, value=v), tol)
                   for v in ends if v is not None):
                return True
        return False


def v_grounded_numbers(output: dict, spec: dict, material: dict) -> list[str]:
    tol = float(spec.get("tolerance", 0.005))
    grounds = _Grounds(material, spec.get("facts"))
    found, errors = _texts(output, spec)
    for path, text in found:
        money = _money(text)
        for _, _, written in money:
            if " ".join(written.split()) not in grounds.prices:
                errors.append(f"{path}: {written!r} is a price, and the material data states none; "
                              f"do not state prices")
        claims, taken = _unit_claims(text)
        taken += [(s, e) for s, e, _ in money]
        for start, written, value, decimals, unit_text in claims:
            if any(s <= start < e for s, e, _ in money):
                continue
            unit = _lookup_unit(unit_text)
            same_dim = [q for q in grounds.quantities if q.unit.dim == unit.dim]
            if any(_matches(value, decimals, unit, q, tol) for q in same_dim):
                continue
            if same_dim:
                known = "; ".join(q.describe() for q in same_dim[:6])
                errors.append(f"{path}: {written!r} does not match the material data ({known}); "
                              f"use only values from the data")
            else:
                errors.append(f"{path}: {written!r} has no counterpart in the material data "
                              f"(no quantity in {unit_text}); do not state it")
        for _, written, value, decimals in _plain_numbers(text, taken):
            if not grounds.plain(value, decimals, tol):
                errors.append(f"{path}: the number {written!r} is not in the material data; "
                              f"use only numbers from the data")
    return errors
