"""Jinja2 rendering: component views, static components, prompts, offline outputs and pages.

HTML templates autoescape (LLM text is data, never markup, SPEC §7); prompt and offline
templates are text. Every template's signature covers the templates it extends, includes or
imports, so editing a partial re-renders exactly the pages that use it.
"""

from __future__ import annotations

import json
import traceback
from pathlib import Path
from typing import Any

import jinja2
from jinja2 import meta
from markupsafe import Markup

from .content import Component, ContentPage, Material, Site
from .errors import InputError, Problem
from .hashing import short


# What template code can raise: a filter on the wrong type, a division by zero... Reported at
# the template's line; anything else is a bug of ours and keeps its traceback.
_TEMPLATE_CODE_ERRORS = (jinja2.TemplateError, TypeError, ValueError, KeyError, AttributeError, ArithmeticError)


class TemplateFailure(Exception):
    """A template raised while rendering: names the template file and line."""

    def __init__(self, problem: Problem):
        super().__init__(str(problem))
        self.problem = problem


def _template_problem(exc: BaseException, root: Path) -> Problem:
    """Find the innermost template frame of a rendering error, for file:line reporting."""
    if isinstance(exc, jinja2.TemplateSyntaxError):
        return Problem(_rel(exc.filename or exc.name or "?", root), f"template syntax error: {exc.message}",
                       exc.lineno)
    if isinstance(exc, jinja2.TemplateNotFound):
        return Problem(_rel(getattr(exc, "name", "?") or "?", root), f"template not found: {exc.name}")
    where, line = "layouts", None
    for frame, lineno in traceback.walk_tb(exc.__traceback__):
        filename = frame.f_code.co_filename
        if filename.endswith((".html", ".j2", ".jinja", ".xml", ".txt", ".md")):
            where, line = _rel(filename, root), lineno
    return Problem(where, f"template error: {type(exc).__name__}: {exc}", line)


def _rel(filename: str, root: Path) -> str:
    try:
        return Path(filename).resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return filename


def jsonld_dumps(value: Any) -> Markup:
    """JSON for a <script> element: `<`, `>` and `&` escaped so nothing can close the element."""
    text = json.dumps(value, ensure_ascii=False, sort_keys=True, indent=None)
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return Markup(text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


_DICT_ATTRIBUTES = frozenset(dir(dict))


class _Environment(jinja2.Environment):
    """Jinja's `x.name` on a plain dict, minus the AttributeError it raises first.

    Jinja tries the attribute, then the item; templates here read dicts (material data, LLM
    outputs) hundreds of times a page, and the failed attribute lookup was the costliest call
    of a cold build. Same result: a dict's own attributes (`d.items`) still win over its keys.
    """

    def getattr(self, obj: Any, attribute: str) -> Any:
        if type(obj) is dict and attribute not in _DICT_ATTRIBUTES:
            try:
                return obj[attribute]
            except KeyError:
                return self.undefined(obj=obj, name=attribute)
        return super().getattr(obj, attribute)

    def make_globals(self, d: Any) -> Any:
        """A template's globals as a plain dict, not Jinja's ChainMap over the environment's:
        every render copies them into its context, and iterating a ChainMap was a tenth of
        the instructions of rendering a page. The environment's globals are never changed
        after it is made."""
        return {**self.globals, **(d or {})}


class Renderer:
    def __init__(self, site: Site, bytecode_dir: Path | None = None, refs_memo: dict | None = None):
        self.site = site
        self.root = site.root
        self._url_prefix = site.config.base_path.rstrip("/")  # parsed once: ~20 links a page
        loader = jinja2.FileSystemLoader([str(site.root / "layouts"), str(site.root)])

        def env(autoescape: bool, **extra: Any) -> jinja2.Environment:
            # One bytecode cache per environment: compiled code depends on its options, which
            # Jinja's cache key (template name and source) does not cover.
            cache = None
            if bytecode_dir is not None:
                options = sorted((k, getattr(v, "__name__", v)) for k, v in extra.items())
                folder = bytecode_dir / f"{'html' if autoescape else 'text'}-{short([jinja2.__version__, options])}"
                folder.mkdir(parents=True, exist_ok=True)
                cache = jinja2.FileSystemBytecodeCache(str(folder))
            # auto_reload off: a Renderer lives for one build, so a template need not be
            # stat-ed again each time it renders (thousands of times in a cold build).
            return _Environment(loader=loader, bytecode_cache=cache, autoescape=autoescape,
                                keep_trailing_newline=True, auto_reload=False, **extra)

        # Layouts and views trim block lines; prompts and offline templates keep Jinja's
        # defaults, so their `{%- -%}` markers alone decide where a line breaks.
        self.html = env(True, trim_blocks=True, lstrip_blocks=True)
        self.text = env(False, undefined=jinja2.StrictUndefined)
        # How prompts are rendered, beyond their templates: part of every prompt fingerprint, so
        # a Jinja upgrade or an environment change renders prompts again instead of trusting them.
        self.text_sig = short([jinja2.__version__, "text", "keep_trailing_newline", "strict"])
        for env in (self.html, self.text):
            env.filters["url"] = self.url
            env.filters["jsonld"] = jsonld_dumps
        self.site_context = self._site_context()
        self.site_sig = short(self.site_context)
        self._sig_cache: dict[str, str] = {}
        # template name -> (source hash, names it references): parsing every template on every
        # build to find its includes costs more than the rest of a one-page rebuild.
        self.refs_memo: dict[str, tuple[str, list[str]]] = {} if refs_memo is None else refs_memo
        # Templates the memo lists were checked by this Jinja version: another version re-checks.
        if self.refs_memo.get(_JINJA_KEY, ("",))[0] != jinja2.__version__:
            self.refs_memo.clear()
            self.refs_memo[_JINJA_KEY] = (jinja2.__version__, [])
        self._inline: dict[str, jinja2.Template] = {}  # inline prompt/system templates, compiled once

    # -- site-wide context ---------------------------------------------------------------------

    def url(self, path: str) -> str:
        """A site-absolute path ("/metal/") as deployed (under base_url's path)."""
        if not isinstance(path, str) or not path.startswith("/") or path.startswith("//"):
            return path
        return self._url_prefix + path

    def absolute(self, path: str) -> str:
        """A site-absolute path as a full URL under base_url (canonical links, sitemap)."""
        return self.site.config.base_url + path.lstrip("/")

    def _site_context(self) -> dict[str, Any]:
        cfg = self.site.config
        nav = [{"title": c["title"], "url": f"/{key}/"} for key, c in cfg.categories.items()]
        menu = sorted((p for p in self.site.pages.values() if p.front.get("menu")),
                      key=lambda p: (p.front.get("order", 100), p.slug))
        nav += [{"title": p.front.get("menu_title", p.front["title"]), "url": p.url} for p in menu]
        return {"title": cfg.title, "description": cfg.description, "base_url": cfg.base_url,
                "language": cfg.language, "nav": nav, "data": self.site.data}

    def category_context(self, key: str) -> dict[str, str]:
        c = self.site.config.categories[key]
        return {"key": key, "title": c["title"], "description": c.get("description", ""), "url": f"/{key}/"}

    def page_context(self, title: str, description: str, path: str, og_type: str = "website") -> dict:
        return {"title": title, "description": description, "path": path,
                "canonical": self.absolute(path), "og_type": og_type}

    # -- signatures ----------------------------------------------------------------------------

    def template_sig(self, name: str) -> str:
        """Fingerprint of a template and every template it references, recursively."""
        sig = self._sig_cache.get(name)
        if sig is None:
            self._sig_cache[name] = "cycle"
            source = self._source(name)
            source_sig = _source_sig(source)
            known = self.refs_memo.get(name)
            if known is not None and known[0] == source_sig:
                refs = known[1]
            else:
                try:
                    refs = sorted(r for r in meta.find_referenced_templates(self.html.parse(source)) if r)
                except jinja2.TemplateSyntaxError:  # reported by check_templates(), with its line
                    refs = []
                else:
                    self.refs_memo[name] = (source_sig, refs)
            sig = short([source_sig, [self.template_sig(r) for r in refs]])
            self._sig_cache[name] = sig
        return sig

    def prompt_sig(self, component: Component) -> str:
        """Fingerprint of a component's system and prompt templates (files or inline)."""
        sigs = []
        for key in ("system", "prompt"):
            value = component.definition.get(key)
            if isinstance(value, str):
                sigs.append(self.template_sig(component.jinja_name(value)) if _is_file(value) else short(value))
        return short(sigs)

    def _source(self, name: str) -> str:
        try:
            return self.html.loader.get_source(self.html, name)[0]
        except jinja2.TemplateNotFound:
            raise InputError("missing template", [Problem(name, f"template {name!r} not found")]) from None

    def unchecked_templates(self) -> list[tuple[jinja2.Environment, str, str]]:
        """Every layout and component template not checked by a successful build yet (a template
        unchanged since one is compiled, from the bytecode cache, when first rendered)."""
        names = [(self.html, n) for n in self.site.layouts if n.endswith((".html", ".xml", ".txt", ".j2"))]
        for c in self.site.components.values():
            names.append((self.html, c.template))
            names += [(self.text, c.jinja_name(v)) for k, v in c.definition.items()
                      if k in ("offline", "prompt", "system") and isinstance(v, str) and _is_file(v)]
        unchecked = []
        for env, name in names:
            source = self._source(name)
            if self.refs_memo.get(name, ("",))[0] != _source_sig(source):
                unchecked.append((env, name, source))
        return unchecked

    def check_templates(self, unchecked: list[tuple[jinja2.Environment, str, str]]) -> None:
        """Compile `unchecked_templates()` up front: syntax errors are bad input."""
        problems = []
        for env, name, source in unchecked:
            try:
                if env is self.text:  # only parsed: compiled when a prompt is first rendered
                    env.parse(source, name, name)
                else:
                    env.get_template(name)
                self.template_sig(name)  # remembers it as checked (saved if the build succeeds)
            except jinja2.TemplateError as exc:
                problems.append(_template_problem(exc, self.root))
        if problems:
            raise InputError("template errors", problems)

    # -- components ----------------------------------------------------------------------------

    def _text_template(self, component: Component, key: str) -> jinja2.Template:
        value = component.definition[key]
        if _is_file(value):
            return self.text.get_template(component.jinja_name(value))
        template = self._inline.get(value)
        if template is None:
            template = self._inline[value] = self.text.from_string(value)
        return template

    def _generation_context(self, component: Component, material: Material, deps: dict) -> dict:
        return {"material": component.select_inputs(material), "site": self.site_context,
                "category": self.category_context(material.category), "deps": deps}

    def messages(self, component: Component, material: Material, deps: dict) -> tuple[dict, ...]:
        ctx = self._generation_context(component, material, deps)
        try:
            out = []
            if component.definition.get("system"):
                out.append({"role": "system", "content": self._text_template(component, "system").render(ctx).strip()})
            out.append({"role": "user", "content": self._text_template(component, "prompt").render(ctx).strip()})
        except _TEMPLATE_CODE_ERRORS as exc:
            raise TemplateFailure(_template_problem(exc, self.root)) from None
        return tuple(out)

    def offline(self, component: Component, material: Material, deps: dict) -> str:
        ctx = self._generation_context(component, material, deps)
        try:
            return self.text.get_template(component.jinja_name(component.definition["offline"])).render(ctx)
        except _TEMPLATE_CODE_ERRORS as exc:
            raise TemplateFailure(_template_problem(exc, self.root)) from None

    def component_html(self, component: Component, material: Material, output: dict | None,
                       deps: dict, page: dict) -> Markup:
        category = self.category_context(material.category)
        if component.kind == "llm":
            ctx = {"output": output, "material": material.data, "site": self.site_context, "category": category}
        else:
            ctx = {"material": material.data, "site": self.site_context, "category": category,
                   "deps": deps, "page": page}
        return Markup(self._render(self.html, component.template, ctx))

    # -- pages ---------------------------------------------------------------------------------

    def _render(self, env: jinja2.Environment, name: str, ctx: dict) -> str:
        try:
            return env.get_template(name).render(ctx)
        except _TEMPLATE_CODE_ERRORS as exc:
            raise TemplateFailure(_template_problem(exc, self.root)) from None

    def layout(self, name: str, ctx: dict) -> str:
        return self._render(self.html, name, {"site": self.site_context, **ctx})

    def content_html(self, page: ContentPage) -> Markup:
        from .markdown import render_markdown

        return Markup(render_markdown(page.body, self.url))


_JINJA_KEY = "\x00jinja"  # in refs_memo: the Jinja version its entries were checked with


def _source_sig(source: str) -> str:
    return short(source)


def _is_file(value: str) -> bool:
    from .components_schema import is_template_file

    return is_template_file(value)
