"""plain_text and no_commerce: text fields hold prose, not markup, links, templates or sales copy."""

from __future__ import annotations

import re

from .base import own_texts, quote, texts

_MARKUP = [
    (re.compile(r"<\s*/?\s*[A-Za-z][\w:-]*(?:\s[^<>]*)?/?\s*>"), "an HTML tag"),
    (re.compile(r"<\s*/?\s*(?:script|style|iframe|img|svg|object|embed|link|meta|form|input|body|html|a)\b",
                re.I), "an HTML tag"),
    (re.compile(r"<!--|-->|<!\[CDATA\[", re.I), "an HTML comment"),
    (re.compile(r"\bon[a-z]{3,}\s*=", re.I), "an event-handler attribute"),
    (re.compile(r"\b(?:javascript|vbscript|livescript)\s*:|\bdata\s*:\s*text/html", re.I), "a script URL"),
    (re.compile(r"&(?:[A-Za-z]{2,8}|#\d{1,7}|#x[0-9A-Fa-f]{1,6});"), "an HTML entity"),
    (re.compile(r"\{\{|\}\}|\{%|%\}|\{#|#\}|\$\{|<%|%>"), "template syntax"),
    (re.compile(r"\b(?:https?|ftp)://\S+|\bwww\.[\w-]+\.\w\S*|\bmailto:\S+", re.I), "a link"),
    (re.compile(r"\]\(\s*\S*\s*\)"), "a markdown link"),
]


def v_plain_text(output: dict, spec: dict, material: dict) -> list[str]:
    found, errors = texts(output, spec)
    for path, text in found:
        for rx, what in _MARKUP:
            m = rx.search(text)
            if m:
                errors.append(f"{path}: contains {what} {quote(m.group(0), 40)}; write plain text only")
                break
    return errors


_COMMERCE = re.compile("|".join([
    r"\b(?:buy|buying|bought|purchas(?:e|es|ed|ing))\b",
    r"\bpre-?order",
    r"\border(?:s|ed|ing)?\s+(?:now|today|online|yours|your|it|one|here|from us|direct|with us)\b",
    r"\b(?:place|placing|put in)\s+(?:an|your)\s+order\b",
    r"\b(?:discount(?:s|ed)?|coupons?|promo(?:tion(?:al)?)?\s+codes?|vouchers?|rebates?|clearance)\b",
    r"\b(?:free|fast|same-day|next-day|express)\s+(?:shipping|delivery)\b|\bshipping\b|\bships?\s+(?:free|within|today)\b",
    r"\b(?:for\s+(?:just|only)|only\s+[$€£]|starting\s+at\s+[$€£]|from\s+just)\b",
    r"\b(?:on\s+sale|for\s+sale|sale\s+price|best\s+price|lowest\s+price|great\s+price|price[ds]?|pricing)\b",
    r"\b(?:add\s+to\s+(?:cart|basket)|checkout|in\s+stock|limited[- ]time|special\s+offer|act\s+now|"
    r"money[- ]back|call\s+(?:us\s+)?(?:now|today)|shop\s+now|subscribe\s+now|get\s+yours)\b",
    r"[$€£¥₹]\s?\d|\d\s?(?:USD|EUR|GBP|dollars?|euros?)\b|\b(?:USD|EUR|GBP)\s?\d",
]), re.I)


def v_no_commerce(output: dict, spec: dict, material: dict) -> list[str]:
    """Sales wording and prices; a phrase the material's own data uses is not sales copy."""
    allowed = " ".join(own_texts(material, spec.get("facts"))).casefold()
    found, errors = texts(output, spec)
    for path, text in found:
        for m in _COMMERCE.finditer(text):
            if m.group(0).casefold() not in allowed:
                errors.append(f"{path}: contains sales wording {quote(m.group(0), 40)}; "
                              f"describe the material, do not sell it")
                break
    return errors
