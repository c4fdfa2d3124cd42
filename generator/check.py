"""`site check` for a built site: links, sitemap, required meta, JSON-LD, mixed content.

`check_built_site(build_dir, base_url)` reads every file of the build once and returns every
problem it finds, sorted. Each Problem's `file` is the page's path relative to `build_dir`
(POSIX style); `line` is set where the problem sits on one line of the page.

What is checked (SPEC §6, issue 5):
- every internal reference (`a href`, `link href`, `script src`, `img src/srcset`,
  `source src/srcset`, `iframe/video/audio/track/embed src`, `video poster`, `use href`,
  meta refresh) resolves to a file of the build, the way a static host serves it: `/x/` is
  `x/index.html`, `/x` is the file `x` or `x/index.html`; absolute paths are taken under
  base_url's path (the site may live under a sub-path), absolute URLs count when they are on
  base_url's host; fragments and queries are ignored; other schemes and hosts are not checked;
- `sitemap.xml` is well formed, valid against the sitemaps.org 0.9 schema (its rules are
  implemented below, see `_check_sitemap`), and lists exactly the built HTML pages (all but
  404.html) by their absolute pretty URLs under base_url;
- every page has a non-empty `<title>`, a meta description of 1-160 characters, a canonical
  URL under base_url (not required of 404.html), og:title, og:description and og:url (og:url
  not required of 404.html); og:url, when both are there, equals the canonical URL;
- each `<script type="application/ld+json">` parses as JSON, has a schema.org `@context`, an
  `@type` on every top-level (or `@graph`) node, the properties its type needs (`_REQUIRED`),
  and no `</script` or `<!--` in its text;
- no page loads an `http://` asset when base_url is https;
- robots.txt exists and its `Sitemap:` lines point at files of the build.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from html import unescape
from pathlib import Path
from posixpath import normpath
from urllib.parse import quote, unquote, urljoin, urlsplit
from xml.etree import ElementTree

from generator.errors import Problem

SITEMAP_NS = "http://www.sitemaps.org/schemas/sitemap/0.9"
MAX_DESCRIPTION = 160
MAX_SITEMAP_URLS = 50_000
MAX_SITEMAP_BYTES = 50 * 1024 * 1024
NOT_FOUND_PAGE = "404.html"

# Which attributes of which elements reference another resource, and whether the browser
# loads it with the page ("asset": mixed content matters) or it is a link to follow.
_URL_ATTRS: dict[str, dict[str, str]] = {
    "a": {"href": "link"},
    "area": {"href": "link"},
    "link": {"href": "link"},  # refined by rel below
    "script": {"src": "asset"},
    "img": {"src": "asset", "srcset": "asset"},
    "source": {"src": "asset", "srcset": "asset"},
    "iframe": {"src": "asset"},
    "video": {"src": "asset", "poster": "asset"},
    "audio": {"src": "asset"},
    "track": {"src": "asset"},
    "embed": {"src": "asset"},
    "use": {"href": "asset", "xlink:href": "asset"},
}
# <link rel=...> values whose href the browser fetches with the page.
_ASSET_RELS = {
    "stylesheet", "icon", "apple-touch-icon", "apple-touch-icon-precomposed", "mask-icon",
    "manifest", "preload", "modulepreload", "prefetch",
}

# schema.org types -> groups of properties; each group needs at least one non-empty member.
_ARTICLE = (("headline",),)
_WEBPAGE = (("name", "url"),)
_REQUIRED: dict[str, tuple[tuple[str, ...], ...]] = {
    "Article": _ARTICLE,
    "BlogPosting": _ARTICLE,
    "NewsArticle": _ARTICLE,
    "TechArticle": _ARTICLE,
    "ScholarlyArticle": _ARTICLE,
    "Product": (("name",),),
    "Organization": (("name",),),
    "Corporation": (("name",),),
    "Person": (("name",),),
    "Thing": (("name",),),
    "BreadcrumbList": (("itemListElement",),),
    "ListItem": (("position",),),
    "WebPage": _WEBPAGE,
    "WebSite": _WEBPAGE,
    "AboutPage": _WEBPAGE,
    "CollectionPage": _WEBPAGE,
    "ItemPage": _WEBPAGE,
    "ImageObject": (("contentUrl", "url"),),
    "Dataset": (("name",), ("description",)),
    "FAQPage": (("mainEntity",),),
}

_SCRIPT_END = re.compile(r"</script[\t\n\f\r />]", re.IGNORECASE)
_SCHEMA_ORG = re.compile(r"^https?://schema\.org/?$")
_DEFAULT_PORTS = {"http": "80", "https": "443"}


# ---------------------------------------------------------------------------------------------
# entry point


def check_built_site(build_dir: Path, base_url: str) -> list[Problem]:
    """Every problem of the site built in `build_dir` for `base_url`, sorted by file, message."""
    build_dir = Path(build_dir)
    try:
        base = _Base.parse(base_url)
    except ValueError as exc:
        return [Problem(file=".", message=str(exc), field="base_url")]
    if not build_dir.is_dir():
        return [Problem(file=".", message=f"no built site in {build_dir}: run `site build` first")]

    files = _walk(build_dir)
    problems: list[Problem] = []
    for required in ("index.html", NOT_FOUND_PAGE, "sitemap.xml", "robots.txt"):
        if required not in files:
            problems.append(Problem(file=required, message=f"{required} is missing from the build"))

    pages = sorted(f for f in files if f.endswith(".html"))
    resolver = _Resolver(base, files)
    for rel in pages:
        problems.extend(_check_page(build_dir, rel, base, resolver))

    if "sitemap.xml" in files:
        problems.extend(_check_sitemap(build_dir / "sitemap.xml", base, pages))
    if "robots.txt" in files:
        problems.extend(_check_robots(build_dir / "robots.txt", resolver))

    return sorted(set(problems), key=_sort_key)


def _sort_key(p: Problem) -> tuple:
    return (p.file, p.message, p.line or 0, p.field or "")


def _walk(build_dir: Path) -> set[str]:
    """Every file under build_dir, as POSIX paths relative to it (one os.walk)."""
    root = str(build_dir)
    files: set[str] = set()
    for dirpath, _dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root)
        prefix = "" if rel_dir == "." else rel_dir.replace(os.sep, "/") + "/"
        for name in filenames:
            files.add(prefix + name)
    return files


# ---------------------------------------------------------------------------------------------
# URLs


@dataclass(frozen=True)
class _Base:
    url: str  # scheme://host/prefix/ (normalised, ends with "/")
    scheme: str
    host: str  # netloc, lower case, default port dropped
    prefix: str  # path, starts and ends with "/"

    @classmethod
    def parse(cls, base_url: str) -> "_Base":
        parts = urlsplit(base_url.strip())
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"base_url must be an absolute http(s) URL, got {base_url!r}")
        prefix = parts.path or "/"
        if not prefix.endswith("/"):
            prefix += "/"
        host = _host(parts.scheme, parts.netloc)
        url = f"{parts.scheme}://{host}{prefix}"
        return cls(url=url, scheme=parts.scheme, host=host, prefix=prefix)

    def page_url(self, rel: str) -> str:
        """The URL a built file is served at: `x/index.html` -> base + `x/`."""
        return self.url + quote(_pretty(rel))

    def under(self, url: str) -> bool:
        """Is `url` an absolute URL on base_url's scheme and host, under its path?"""
        if url.startswith(self.url):
            return True
        parts = urlsplit(url)
        return (
            parts.scheme == self.scheme
            and _host(parts.scheme, parts.netloc) == self.host
            and (parts.path + "/" == self.prefix or parts.path.startswith(self.prefix))
        )


def _host(scheme: str, netloc: str) -> str:
    netloc = netloc.lower()
    port = _DEFAULT_PORTS.get(scheme)
    if port and netloc.endswith(":" + port):
        netloc = netloc[: -len(port) - 1]
    return netloc


def _pretty(rel: str) -> str:
    """`index.html` -> ``, `metal/index.html` -> `metal/`, `a/b.html` -> `a/b.html`."""
    if rel == "index.html":
        return ""
    if rel.endswith("/index.html"):
        return rel[: -len("index.html")]
    return rel


_OUTSIDE = object()  # sentinel: on the site's host, outside base_url's path
_INVALID = object()  # sentinel: not a URL at all (urllib refuses it)


class _Resolver:
    """Maps references found on pages to files of the build, with a cache.

    `target(ref, page_url)` returns None for references it does not check (other schemes and
    hosts, bare fragments), `_OUTSIDE` for paths on the site's host outside base_url's path,
    `_INVALID` for what is no URL, else the path relative to build_dir the reference points
    at (before the pretty-URL lookup of `exists`).
    """

    def __init__(self, base: _Base, files: set[str]):
        self.base = base
        self.files = files
        self._cache: dict[tuple[str, str], object] = {}

    def target(self, ref: str, page_url: str) -> object:
        # Root-relative and absolute references do not depend on the page: cache them once.
        independent = ref[:1] == "/" or "://" in ref[:12]
        key_page = "" if independent and page_url.startswith(self.base.url) else page_url
        key = (key_page, ref)
        try:
            return self._cache[key]
        except KeyError:
            pass
        result = self._target(ref, page_url)
        self._cache[key] = result
        return result

    def _target(self, ref: str, page_url: str) -> object:
        if not ref or ref.startswith("#"):
            return None
        try:
            absolute = urljoin(page_url, ref)
            parts = urlsplit(absolute)
        except ValueError:
            return _INVALID
        if parts.scheme not in ("http", "https"):
            return None
        if _host(parts.scheme, parts.netloc) != self.base.host:
            return None
        path = unquote(parts.path) or "/"
        prefix = self.base.prefix
        if path + "/" == prefix:
            return ""
        if not path.startswith(prefix):
            return _OUTSIDE
        rel = path[len(prefix):]
        if rel:
            trailing = rel.endswith("/")
            rel = normpath(rel).lstrip("/")
            if rel in (".", ""):
                return ""
            if rel.startswith("../"):
                return _OUTSIDE
            if trailing:
                rel += "/"
        return rel

    def exists(self, rel: str) -> str | None:
        """The file a (pretty) path is served from, or None."""
        if rel == "" or rel.endswith("/"):
            candidate = rel + "index.html"
            return candidate if candidate in self.files else None
        if rel in self.files:
            return rel
        candidate = rel + "/index.html"
        return candidate if candidate in self.files else None

    def expected_file(self, rel: str) -> str:
        return rel + "index.html" if rel == "" or rel.endswith("/") else rel


def _srcset_urls(value: str) -> list[str]:
    """The URLs of a srcset attribute (`a.jpg 1x, b.jpg 2x`), per the HTML parsing rules."""
    urls = []
    i, n = 0, len(value)
    while i < n:
        while i < n and (value[i].isspace() or value[i] == ","):
            i += 1
        start = i
        while i < n and not value[i].isspace():
            i += 1
        url = value[start:i]
        if url.endswith(","):
            url = url.rstrip(",")
        else:
            # skip the descriptors up to the next comma outside parentheses
            depth = 0
            while i < n:
                c = value[i]
                if c == "(":
                    depth += 1
                elif c == ")":
                    depth = max(0, depth - 1)
                elif c == "," and depth == 0:
                    break
                i += 1
        if url:
            urls.append(url)
    return urls


# ---------------------------------------------------------------------------------------------
# pages


# The page scanner. html.parser tokenises every tag and text run in Python (about 3 MB/s: close
# to a minute for 10,000 material pages), so a page is scanned with one regular expression
# instead, over its bytes with ASCII letters lowered (tag names are case-insensitive; the
# length does not change, so offsets index the original bytes, which give the values). It
# follows the HTML tokenizer where it matters here: comments are skipped; the text of
# script/style/textarea/title is raw text up to the first `</name` (a `<a` in a script string
# is not a link); attribute values are quoted with " or ' (and may hold `>`) or unquoted; the
# first of duplicate attributes wins; character references in values are decoded.
# tests/test_check.py checks it against html.parser.

_RAW_TEXT = ("script", "style", "textarea", "title")
_TAG_NAMES = "|".join(sorted(set(_URL_ATTRS) | {"meta", "base", "svg"}, key=lambda n: (-len(n), n)))
_ATTRS_PART = rb"""((?:[^>=]+|=\s*"[^"]*"|=\s*'[^']*'|=)*+)>"""
_TOKEN = re.compile(
    rb"<(?:"
    rb"(!--)(?:>|->|.*?(?:-->|\Z))"  # 1: a comment
    rb"|(script|style|textarea|title)(?=[\s/>])" + _ATTRS_PART  # 2: raw text element, 3: attributes
    + rb"(.*?)(?:</\2(?=[\t\n\f\r />])|\Z)"  # 4: its text
    rb"|(/?)(" + _TAG_NAMES.encode() + rb")(?=[\s/>])"  # 5: "/" of an end tag, 6: name
    + _ATTRS_PART  # 7: attributes
    + rb")",
    re.DOTALL,
)
_ATTR = re.compile(rb"""([^\s"'>/=][^\s"'>/=]*)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]*)))?""")
_REFRESH_URL = re.compile(r"""url\s*=\s*['"]?([^'"]+)""", re.IGNORECASE)
_ATTR_CACHE: dict[bytes, dict[str, str]] = {}


def _attributes(body: bytes) -> dict[str, str]:
    """Attributes of a start tag (the bytes after its name), names lowered, values decoded."""
    cached = _ATTR_CACHE.get(body)
    if cached is not None:
        return cached
    attrs: dict[str, str] = {}
    for name, v1, v2, v3 in _ATTR.findall(body):
        key = name.decode("utf-8", "replace").lower()
        if key not in attrs:
            value = (v1 or v2 or v3).decode("utf-8", "replace")
            attrs[key] = unescape(value) if "&" in value else value
    if len(_ATTR_CACHE) > 50_000:
        _ATTR_CACHE.clear()
    _ATTR_CACHE[body] = attrs
    return attrs


class _PageScan:
    """One pass over a page, collecting everything the checks need; offsets index `data`."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.refs: list[tuple[str, str, str, int]] = []  # (field, url, kind, offset)
        self.titles: list[str] = []
        self.descriptions: list[str] = []
        self.canonicals: list[tuple[str, int]] = []
        self.og: dict[str, list[str]] = {}
        self.base_href: str | None = None
        self.ld_json: list[tuple[int, int]] = []  # (offset of <script, offset of its text)
        self._scan()

    def line(self, offset: int) -> int:
        return self.data.count(b"\n", 0, offset) + 1

    def _scan(self) -> None:
        data = self.data
        svg_depth = 0
        seen: set[tuple[str, bytes]] = set()
        for m in _TOKEN.finditer(data.lower()):
            if m.start(1) >= 0:  # comment
                continue
            raw_name = m.group(2)
            if raw_name is not None:
                if raw_name == b"title":
                    if not svg_depth:
                        s, e = m.span(4)
                        self.titles.append(unescape(data[s:e].decode("utf-8", "replace")))
                elif raw_name == b"script":
                    s, e = m.span(3)
                    attrs = _attributes(data[s:e])
                    if attrs.get("type", "").strip().lower() == "application/ld+json":
                        if "src" not in attrs:
                            self.ld_json.append((m.start(), m.start(4)))
                    else:
                        self._tag("script", attrs, m.start())
                continue
            name = m.group(6).decode()
            if m.start(5) != m.end(5):  # end tag
                if name == "svg" and svg_depth:
                    svg_depth -= 1
                continue
            s, e = m.span(7)
            body = data[s:e]
            if name == "svg":
                if not body.rstrip().endswith(b"/"):
                    svg_depth += 1
                continue
            if name != "meta":  # the same tag again (a nav link...) adds nothing new
                key = (name, body)
                if key in seen:
                    continue
                seen.add(key)
            self._tag(name, _attributes(body), m.start())

    def _tag(self, tag: str, a: dict[str, str], offset: int) -> None:
        if tag == "meta":
            self._meta(a, offset)
            return
        if tag == "base":
            if self.base_href is None and "href" in a:
                self.base_href = a["href"].strip()
            return
        rels: set[str] = set()
        if tag == "link":
            rels = set(a.get("rel", "").lower().split())
            if "canonical" in rels and "href" in a:
                self.canonicals.append((a["href"].strip(), offset))
        for attr, kind in _URL_ATTRS[tag].items():
            value = a.get(attr)
            if value is None:
                continue
            if rels & _ASSET_RELS:
                kind = "asset"
            field = f"{tag} {attr}"
            if attr == "srcset":
                for url in _srcset_urls(value):
                    self.refs.append((field, url, kind, offset))
            else:
                self.refs.append((field, value.strip(), kind, offset))

    def _meta(self, a: dict[str, str], offset: int) -> None:
        content = a.get("content")
        name = a.get("name", "").strip().lower()
        prop = a.get("property", "").strip().lower()
        if name == "description":
            self.descriptions.append(content or "")
        key = prop if prop.startswith("og:") else name if name.startswith("og:") else None
        if key:
            self.og.setdefault(key, []).append(content or "")
        if a.get("http-equiv", "").strip().lower() == "refresh" and content:
            m = _REFRESH_URL.search(content)
            if m:
                self.refs.append(("meta refresh", m.group(1).strip(), "link", offset))


def _check_page(build_dir: Path, rel: str, base: _Base, resolver: _Resolver) -> list[Problem]:
    problems: list[Problem] = []

    def problem(message: str, field: str | None = None, line: int | None = None) -> None:
        problems.append(Problem(file=rel, message=message, line=line, field=field))

    data = (build_dir / rel).read_bytes()
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        problem(f"not valid UTF-8 ({exc.reason} at byte {exc.start})")
    parser = _PageScan(data)

    is_404 = rel == NOT_FOUND_PAGE
    page_url = base.page_url(rel)

    # --- required meta
    if not parser.titles:
        problem("missing <title>", "title")
    elif not parser.titles[0].strip():
        problem("empty <title>", "title")
    if len(parser.titles) > 1:
        problem(f"{len(parser.titles)} <title> elements (one expected)", "title")

    if not parser.descriptions:
        problem('missing <meta name="description">', "meta description")
    else:
        desc = " ".join(parser.descriptions[0].split())
        if not desc:
            problem("empty meta description", "meta description")
        elif len(desc) > MAX_DESCRIPTION:
            problem(
                f"meta description is {len(desc)} characters (at most {MAX_DESCRIPTION})",
                "meta description",
            )
        if len(parser.descriptions) > 1:
            count = len(parser.descriptions)
            problem(f"{count} meta descriptions (one expected)", "meta description")

    canonical = None
    if not parser.canonicals:
        if not is_404:
            problem('missing <link rel="canonical">', "canonical")
    else:
        canonical, offset = parser.canonicals[0]
        if not base.under(canonical):
            message = f"canonical URL {canonical!r} is not an absolute URL under {base.url}"
            problem(message, "canonical", parser.line(offset))
        if len(parser.canonicals) > 1:
            problem(f"{len(parser.canonicals)} canonical links (one expected)", "canonical")

    for key in ("og:title", "og:description", "og:url"):
        values = parser.og.get(key)
        if not values:
            if not (is_404 and key == "og:url"):
                problem(f'missing <meta property="{key}">', key)
            continue
        value = values[0].strip()
        if not value:
            problem(f"empty {key}", key)
        elif key == "og:url":
            if not base.under(value):
                problem(f"og:url {value!r} is not an absolute URL under {base.url}", key)
            elif canonical and base.under(canonical) and value != canonical:
                problem(f"og:url {value!r} differs from the canonical URL {canonical!r}", key)

    # --- references
    doc_url = urljoin(page_url, parser.base_href) if parser.base_href else page_url
    insecure_base = urlsplit(doc_url).scheme == "http"
    seen: set[tuple[str, str]] = set()
    for field, url, kind, offset in parser.refs:
        if (field, url) in seen:
            continue
        seen.add((field, url))
        if base.scheme == "https" and kind == "asset" and url:
            if url[:5].lower() == "http:" or (insecure_base and _resolves_to_http(url, doc_url)):
                message = f"loads http:// asset {url!r} on an https site (mixed content)"
                problem(message, field, parser.line(offset))
        target = resolver.target(url, doc_url)
        if target is None:
            continue
        what = "broken link" if kind == "link" else "missing asset"
        if target is _OUTSIDE:
            message = f"{what} {url!r}: outside the site's base path {base.prefix}"
        elif target is _INVALID:
            message = f"{what} {url!r}: not a valid URL"
        elif resolver.exists(target) is None:
            message = f"{what} {url!r}: no {resolver.expected_file(target)} in the build"
        else:
            continue
        problem(message, field, parser.line(offset))

    # --- JSON-LD
    for tag_offset, text_offset in parser.ld_json:
        for message in _check_ld_block(data[text_offset:].decode("utf-8", "replace"), 0):
            problem(message, "json-ld", parser.line(tag_offset))

    return problems


def _resolves_to_http(url: str, doc_url: str) -> bool:
    try:
        return urlsplit(urljoin(doc_url, url)).scheme == "http"
    except ValueError:
        return False


# ---------------------------------------------------------------------------------------------
# JSON-LD


def _check_ld_block(raw: str, start: int) -> list[str]:
    """Problems of the JSON-LD block whose text starts at raw[start] (the rest of the page)."""
    messages: list[str] = []
    ends = []
    for m in _SCRIPT_END.finditer(raw, start):
        ends.append(m.start())
        if len(ends) >= 20:
            break
    if not ends:
        return ["JSON-LD script element is never closed"]

    # The browser ends the element at the first `</script`; if the JSON only parses up to a
    # later one, a string in it contains `</script` and breaks out of the element.
    text = raw[start : ends[0]]
    data, error = _json(text)
    if error is not None:
        for end in ends[1:]:
            later, later_error = _json(raw[start:end])
            if later_error is None:
                text, data, error = raw[start:end], later, None
                break
    if error is not None:
        return [f"JSON-LD does not parse: {error}"]

    lowered = text.lower()
    if "</script" in lowered:
        messages.append(
            "JSON-LD text contains '</script', which ends the script element early "
            "(escape '<' as \\u003c)"
        )
    if "<!--" in text:
        messages.append(
            "JSON-LD text contains '<!--', which changes how the script element ends "
            "(escape '<' as \\u003c)"
        )
    messages.extend(_check_ld_data(data))
    return messages


def _json(text: str) -> tuple[object, str | None]:
    try:
        return json.loads(text, parse_constant=_not_json), None
    except ValueError as exc:  # JSONDecodeError, NaN/Infinity
        return None, str(exc)
    except RecursionError:
        return None, "nested too deeply"


def _not_json(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


def _check_ld_data(data: object) -> list[str]:
    messages: list[str] = []
    roots = data if isinstance(data, list) else [data]
    if not roots:
        return ["JSON-LD is an empty list"]
    for i, root in enumerate(roots):
        where = f"[{i}]" if isinstance(data, list) else ""
        if not isinstance(root, dict):
            messages.append(f"JSON-LD{where} is not an object")
            continue
        context = root.get("@context")
        if context is None:
            messages.append(f"JSON-LD{where} has no @context")
        elif not _is_schema_org(context):
            messages.append(f"JSON-LD{where} @context {context!r} is not schema.org")
        if "@graph" in root:
            graph = root["@graph"]
            nodes = graph if isinstance(graph, list) else [graph]
            for j, node in enumerate(nodes):
                node_where = f"{where}@graph[{j}]"
                if not isinstance(node, dict):
                    messages.append(f"JSON-LD {node_where} is not an object")
                elif "@type" not in node:
                    messages.append(f"JSON-LD {node_where} has no @type")
        elif "@type" not in root:
            messages.append(f"JSON-LD{where} has no @type")
        messages.extend(_check_ld_types(root, where or "top level"))
    return messages


def _check_ld_types(node: object, where: str, depth: int = 0, nested: bool = False) -> list[str]:
    """Required properties of every typed node in the tree under `node`.

    A nested node with an `@id` (`"mainEntityOfPage": {"@type": "WebPage", "@id": url}`,
    an author described elsewhere in the @graph) is a reference: it needs nothing more.
    """
    if depth > 50:
        return []
    messages: list[str] = []
    if isinstance(node, list):
        for i, item in enumerate(node):
            messages.extend(_check_ld_types(item, f"{where}[{i}]", depth + 1, nested))
        return messages
    if not isinstance(node, dict):
        return messages
    types = node.get("@type")
    for t in types if isinstance(types, list) else [types]:
        if not isinstance(t, str):
            if t is not None:
                messages.append(f"JSON-LD {where}: @type must be a string, got {t!r}")
            continue
        if not t.strip():
            messages.append(f"JSON-LD {where}: empty @type")
            continue
        if nested and _present(node.get("@id")):
            continue
        name = t.rsplit("/", 1)[-1].rsplit(":", 1)[-1]
        for group in _REQUIRED.get(name, ()):
            if not any(_present(node.get(prop)) for prop in group):
                wanted = " or ".join(group)
                messages.append(f"JSON-LD {name} ({where}) is missing {wanted}")
    for key, value in node.items():
        if key == "@context" or not isinstance(value, (dict, list)):
            continue
        sub = key if where == "top level" else f"{where}.{key}"
        messages.extend(_check_ld_types(value, sub, depth + 1, nested=key != "@graph"))
    return messages


def _present(value: object) -> bool:
    if value is None:
        return False
    if isinstance(value, str):
        return bool(value.strip())
    if isinstance(value, (list, dict)):
        return bool(value)
    return True


def _is_schema_org(context: object) -> bool:
    if isinstance(context, str):
        return bool(_SCHEMA_ORG.match(context.strip()))
    if isinstance(context, dict):
        vocab = context.get("@vocab")
        return isinstance(vocab, str) and bool(_SCHEMA_ORG.match(vocab.strip()))
    if isinstance(context, list):
        return any(_is_schema_org(c) for c in context)
    return False


# ---------------------------------------------------------------------------------------------
# sitemap.xml
#
# The rules of http://www.sitemaps.org/schemas/sitemap/0.9/sitemap.xsd:
#   urlset: sequence of (any element of another namespace)*, url+     (and at most 50,000 urls)
#   url:    sequence of loc, lastmod?, changefreq?, priority?, (any element of another ns)*
#   loc:        xsd:anyURI, length 12..2048
#   lastmod:    xsd:date | xsd:dateTime
#   changefreq: always | hourly | daily | weekly | monthly | yearly | never
#   priority:   xsd:decimal, 0.0..1.0
# No attributes are declared (xsi:* ones are always allowed); element content is whitespace
# only between elements; simple types other than xsd:string collapse whitespace.

_URL_CHILDREN = ("loc", "lastmod", "changefreq", "priority")
_CHANGEFREQ = {"always", "hourly", "daily", "weekly", "monthly", "yearly", "never"}
_XSI = "{http://www.w3.org/2001/XMLSchema-instance}"
_TZ = r"(Z|[+-]\d{2}:\d{2})?"
_XSD_DATE = re.compile(r"^(-?\d{4,})-(\d{2})-(\d{2})" + _TZ + "$")
_XSD_DATETIME = re.compile(
    r"^(-?\d{4,})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d+)?" + _TZ + "$"
)
_XSD_DECIMAL = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)$")


def _check_sitemap(path: Path, base: _Base, pages: list[str]) -> list[Problem]:
    file = "sitemap.xml"
    problems: list[Problem] = []

    def problem(message: str, field: str | None = None, line: int | None = None) -> None:
        problems.append(Problem(file=file, message=message, line=line, field=field))

    data = path.read_bytes()
    if len(data) > MAX_SITEMAP_BYTES:
        problem(f"sitemap.xml is {len(data)} bytes (at most {MAX_SITEMAP_BYTES} uncompressed)")
    try:
        root = ElementTree.fromstring(data)
    except ElementTree.ParseError as exc:
        line = exc.position[0] if getattr(exc, "position", None) else None
        problem(f"sitemap.xml is not well-formed XML: {exc}", line=line)
        return problems

    ns = "{" + SITEMAP_NS + "}"
    if root.tag != ns + "urlset":
        problem(f"root element is {_show_tag(root.tag)}, expected urlset in namespace {SITEMAP_NS}")
        return problems
    _no_attributes(root, "urlset", problem)
    _element_only(root, "urlset", problem)

    locs: dict[str, int] = {}  # page path relative to build_dir -> count
    urls = 0
    seen_url = False
    for child in root:
        if not isinstance(child.tag, str):  # comments, processing instructions
            continue
        if child.tag == ns + "url":
            seen_url = True
            urls += 1
            loc = _check_url_entry(child, urls, ns, problem)
            if loc is None:
                continue
            if not base.under(loc):
                problem(f"url #{urls}: loc {loc!r} is not an absolute URL under {base.url}", "loc")
                continue
            rel = unquote(urlsplit(loc).path)[len(base.prefix):]
            locs[rel] = locs.get(rel, 0) + 1
        elif _foreign(child.tag) and not seen_url:
            continue  # xsd:any namespace="##other" before the urls
        else:
            problem(f"unexpected element {_show_tag(child.tag)} in urlset", "urlset")
    if urls == 0:
        problem("sitemap.xml lists no url (urlset needs at least one)", "urlset")
    if urls > MAX_SITEMAP_URLS:
        problem(f"sitemap.xml has {urls} urls (at most {MAX_SITEMAP_URLS})", "urlset")

    # --- exactly the built pages
    expected = {_pretty(p): p for p in pages if p != NOT_FOUND_PAGE}
    for rel, count in sorted(locs.items()):
        if count > 1:
            problem(f"{base.url + rel} is listed {count} times", "loc")
        if rel not in expected:
            page = rel + "index.html" if rel == "" or rel.endswith("/") else rel
            problem(f"lists {base.url + rel} but no page {page} was built", "loc")
    for rel, page in sorted(expected.items()):
        if rel not in locs:
            problem(f"page {page} is missing from sitemap.xml (expected {base.url + rel})", "loc")
    return problems


def _check_url_entry(url, n: int, ns: str, problem) -> str | None:
    """Validate one <url>; return its loc (whitespace collapsed) when it has a valid one."""
    _no_attributes(url, f"url #{n}", problem)
    _element_only(url, f"url #{n}", problem)
    position = 0  # index into _URL_CHILDREN of the first element still allowed
    loc: str | None = None
    have_loc = False
    for child in url:
        if not isinstance(child.tag, str):  # comments, processing instructions
            continue
        local = child.tag[len(ns):] if child.tag.startswith(ns) else None
        if local in _URL_CHILDREN:
            index = _URL_CHILDREN.index(local)
            if index < position:
                problem(
                    f"url #{n}: <{local}> is repeated or out of order "
                    "(expected loc, lastmod?, changefreq?, priority?)",
                    local,
                )
                continue
            position = index + 1
            _no_attributes(child, f"url #{n} <{local}>", problem)
            if len(child):
                problem(f"url #{n}: <{local}> must contain text only", local)
                continue
            text = child.text or ""
            if local == "loc":
                have_loc = True
                loc = _check_loc(text, n, problem)
            elif local == "lastmod":
                if not _valid_lastmod(text.strip()):
                    problem(f"url #{n}: lastmod {text!r} is not an xsd:date or xsd:dateTime", local)
            elif local == "changefreq":
                if text not in _CHANGEFREQ:  # xsd:string: whitespace is not collapsed
                    allowed = ", ".join(sorted(_CHANGEFREQ))
                    problem(f"url #{n}: changefreq {text!r} is not one of {allowed}", local)
            elif not _valid_priority(text.strip()):
                problem(f"url #{n}: priority {text!r} is not a decimal from 0.0 to 1.0", local)
        elif _foreign(child.tag) and position > 0:
            position = len(_URL_CHILDREN)  # xsd:any namespace="##other" after the sitemap fields
        else:
            problem(f"url #{n}: unexpected element {_show_tag(child.tag)}", "url")
    if not have_loc:
        problem(f"url #{n} has no <loc>", "loc")
    return loc


def _check_loc(text: str, n: int, problem) -> str | None:
    loc = " ".join(text.split())
    if not 12 <= len(loc) <= 2048:
        problem(f"url #{n}: loc is {len(loc)} characters (12 to 2048 allowed)", "loc")
        return None
    parts = urlsplit(loc)
    if parts.scheme not in ("http", "https") or not parts.netloc or " " in loc:
        problem(f"url #{n}: loc {loc!r} is not an absolute http(s) URL", "loc")
        return None
    return loc


def _valid_lastmod(text: str) -> bool:
    m = _XSD_DATETIME.match(text)
    if m:
        year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
        if hour == 24 and minute == 0 and second == 0 and not (m.group(7) or "").strip(".0"):
            hour = 0  # 24:00:00 is the end of the day
        elif hour > 23 or minute > 59 or second > 59:
            return False
        return _valid_date(year, month, day) and _valid_tz(m.group(8))
    m = _XSD_DATE.match(text)
    if m:
        year, month, day = int(m.group(1)), int(m.group(2)), int(m.group(3))
        return _valid_date(year, month, day) and _valid_tz(m.group(4))
    return False


_DAYS = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def _valid_date(year: int, month: int, day: int) -> bool:
    if year == 0 or not 1 <= month <= 12:  # XSD 1.0 has no year 0000
        return False
    y = abs(year)
    leap = y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)
    days = 29 if month == 2 and leap else _DAYS[month - 1]
    return 1 <= day <= days


def _valid_tz(tz: str | None) -> bool:
    if not tz or tz == "Z":
        return True
    hours, minutes = int(tz[1:3]), int(tz[4:6])
    return minutes <= 59 and (hours < 14 or (hours == 14 and minutes == 0))


def _valid_priority(text: str) -> bool:
    if not _XSD_DECIMAL.match(text):
        return False
    try:
        value = Decimal(text)
    except InvalidOperation:
        return False
    return Decimal(0) <= value <= Decimal(1)


def _foreign(tag: str) -> bool:
    """An element of a namespace other than the sitemap's (xsd:any namespace="##other")."""
    return tag.startswith("{") and not tag.startswith("{" + SITEMAP_NS + "}")


def _show_tag(tag: str) -> str:
    if tag.startswith("{"):
        ns, local = tag[1:].split("}", 1)
        return f"<{local}> (namespace {ns})"
    return f"<{tag}> (no namespace)"


def _no_attributes(element, where: str, problem) -> None:
    for name in element.attrib:
        if not name.startswith(_XSI):
            problem(f"{where}: attribute {name!r} is not allowed", "attribute")


def _element_only(element, where: str, problem) -> None:
    """Element-only content: no text between the child elements."""
    if (element.text or "").strip() or any((c.tail or "").strip() for c in element):
        problem(f"{where}: text is not allowed between elements", "text")


# ---------------------------------------------------------------------------------------------
# robots.txt


def _check_robots(path: Path, resolver: _Resolver) -> list[Problem]:
    problems = []
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        return [Problem(file="robots.txt", message="robots.txt is not valid UTF-8")]
    for n, line in enumerate(text.splitlines(), 1):
        key, sep, value = line.partition(":")
        if not sep or key.strip().lower() != "sitemap":
            continue
        url = value.split("#", 1)[0].strip()
        if urlsplit(url).scheme not in ("http", "https"):
            message = f"Sitemap {url!r} is not an absolute URL"
            problems.append(Problem("robots.txt", message, n, "Sitemap"))
            continue
        target = resolver.target(url, resolver.base.url)
        if target is None:  # another host
            continue
        if target is _OUTSIDE or target is _INVALID or resolver.exists(target) is None:
            message = f"Sitemap {url!r} is not a file of the build"
            problems.append(Problem("robots.txt", message, n, "Sitemap"))
    return problems
