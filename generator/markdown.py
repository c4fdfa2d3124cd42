"""Hand-written pages: YAML front matter + markdown rendered with raw HTML off (SPEC §7)."""

from __future__ import annotations

from typing import Any, Callable

from . import yamlio


def split_front_matter(text: str, rel: str) -> tuple[dict[str, Any], str]:
    if text.startswith("---\n") or text.startswith("---\r\n"):
        end = text.find("\n---", 3)
        if end != -1:
            front_text = text[text.index("\n") + 1:end + 1]
            body = text[end + 4:].lstrip("\r\n")
            front = yamlio.parse(front_text, rel) or {}
            if not isinstance(front, dict):
                raise yamlio.YamlSyntaxError(_problem(rel, "front matter must be a mapping"))
            return front, body
    return {}, text


def _problem(rel: str, message: str):
    from .errors import Problem

    return Problem(rel, message, 1)


def render_markdown(body: str, url: Callable[[str], str]) -> str:
    """Markdown -> HTML with raw HTML disabled; site-absolute links get the deploy path prefix."""
    from markdown_it import MarkdownIt

    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False}).enable("table")

    def link_open(renderer, tokens, idx, options, env):
        href = tokens[idx].attrGet("href")
        if isinstance(href, str) and href.startswith("/") and not href.startswith("//"):
            tokens[idx].attrSet("href", url(href))
        return renderer.renderToken(tokens, idx, options, env)

    md.add_render_rule("link_open", link_open)
    return md.render(body)
