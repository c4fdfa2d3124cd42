"""`check_built_site` on a small built site written by hand, and the publish workflow's commands."""

from __future__ import annotations

import json
import shlex
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml

from generator import check as check_module
from generator.check import check_built_site

REPO = Path(__file__).resolve().parent.parent
WORKFLOW = REPO / ".github" / "workflows" / "publish.yml"
BASE = "https://example.org/"


# ---------------------------------------------------------------------------------------------
# helpers other tests use


def workflow_site_commands(path: Path, job: str = "build") -> list[list[str]]:
    """The `site ...` commands of a workflow job, in order, as argv lists.

    Each `run:` line starting with `site ` is one command (backslash continuations joined).
    A `${{ ... }}` expression cannot be evaluated outside GitHub, so an argument holding one is
    left out, with the `--option` right before it when it is that option's value.
    `job` defaults to the job that runs on a push to main.
    """
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    steps = data["jobs"][job].get("steps", [])
    commands: list[list[str]] = []
    for step in steps:
        run = step.get("run")
        if not run:
            continue
        for line in run.replace("\\\n", " ").splitlines():
            line = line.strip()
            if not line.startswith("site "):
                continue
            argv: list[str] = []
            for token in shlex.split(line, comments=True):
                if "${{" in token:
                    if argv and argv[-1].startswith("--") and "=" not in argv[-1] and len(argv) > 1:
                        argv.pop()
                    continue
                argv.append(token)
            commands.append(argv)
    return commands


def page(
    title: str | None,
    description: str | None,
    path: str,
    body: str = "",
    head: str = "",
    base: str = BASE,
    canonical: bool = True,
) -> str:
    """A complete page as the layouts write it; None leaves a tag out."""
    url = base + path
    parts = ["<!doctype html>", '<html lang="en">', "<head>", '<meta charset="utf-8">']
    if title is not None:
        parts.append(f"<title>{title}</title>")
    if description is not None:
        parts.append(f'<meta name="description" content="{description}">')
    if canonical:
        parts.append(f'<link rel="canonical" href="{url}">')
    parts.append(f'<meta property="og:title" content="{title or ""}">')
    parts.append(f'<meta property="og:description" content="{description or ""}">')
    if canonical:
        parts.append(f'<meta property="og:url" content="{url}">')
    prefix = "/" + base.split("://", 1)[1].split("/", 1)[1]  # base_url's path
    parts.append(f'<link rel="stylesheet" href="{prefix}assets/style.css">')
    parts.append(f'<link rel="icon" href="{prefix}assets/logo.svg">')
    parts.append(head)
    parts.append("</head>")
    parts.append("<body>")
    parts.append(
        f'<nav><a href="{prefix}">Home</a> <a href="{prefix}metal/">Metal</a> '
        f'<a href="{prefix}about/">About</a> <a href="#main">skip</a></nav>'
    )
    parts.append(f'<main id="main">{body}</main>')
    parts.append(f'<script src="{prefix}assets/app.js" defer></script>')
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


JSONLD = {
    "@context": "https://schema.org",
    "@graph": [
        {
            "@type": "Article",
            "headline": "Aluminum laser cleaning",
            "author": {"@type": "Person", "name": "Alessandro Moretti"},
            "description": "Parameters for cleaning aluminum </p> safely.",
        },
        {
            "@type": "BreadcrumbList",
            "itemListElement": [
                {"@type": "ListItem", "position": 1, "name": "Metal", "item": BASE + "metal/"},
                {"@type": "ListItem", "position": 2, "name": "Aluminum"},
            ],
        },
    ],
}


def jsonld_script(data: object) -> str:
    text = json.dumps(data, ensure_ascii=False).replace("<", "\\u003c")
    return f'<script type="application/ld+json">{text}</script>'


def sitemap(urls: list[str]) -> str:
    entries = "".join(
        f"  <url><loc>{u}</loc><lastmod>2025-01-31</lastmod><changefreq>weekly</changefreq>"
        f"<priority>0.5</priority></url>\n"
        for u in urls
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">\n{entries}</urlset>\n'
    )


def write_site(root: Path, base: str = BASE) -> Path:
    """The site `site build` would write for one category, one material and an about page."""
    prefix = "/" + base.split("://", 1)[1].split("/", 1)[1]
    files = {
        "index.html": page(
            "Laser cleaning materials",
            "Laser cleaning parameters for metals, wood and stone.",
            "",
            body=f'<a href="{prefix}metal/aluminum/">Aluminum</a>'
            f'<img src="{prefix}assets/logo.svg" alt="">'
            '<a href="mailto:hi@example.org">mail</a> <a href="https://other.example/x">x</a>',
            base=base,
        ),
        "metal/index.html": page(
            "Metal",
            "Metals and their laser cleaning parameters.",
            "metal/",
            body='<a href="aluminum/">Aluminum</a> <a href="aluminum">no slash</a>'
            f'<a href="{base}metal/aluminum/#props">absolute</a>',
            base=base,
        ),
        "metal/aluminum/index.html": page(
            "Aluminum",
            "Lightweight, corrosion-resistant structural metal &amp; its laser settings.",
            "metal/aluminum/",
            head=jsonld_script(JSONLD),
            body='<a href="../">Metal</a> <a href="../../about/?ref=x">About</a>'
            f'<img src="{prefix}assets/aluminum.jpg" '
            f'srcset="{prefix}assets/aluminum.jpg 1x, {prefix}assets/aluminum@2x.jpg 2x" alt="">'
            f'<svg><title>icon</title><use href="{prefix}assets/logo.svg#i"></use></svg>',
            base=base,
        ),
        "about/index.html": page("About", "Who writes this site.", "about/", base=base),
        "404.html": page("Not found", "This page does not exist.", "404.html", canonical=False, base=base),
        "sitemap.xml": sitemap([base, base + "metal/", base + "metal/aluminum/", base + "about/"]),
        "robots.txt": f"User-agent: *\nAllow: /\nSitemap: {base}sitemap.xml\n",
        "assets/style.css": "body { margin: 0 }\n",
        "assets/app.js": "",
        "assets/logo.svg": "<svg xmlns='http://www.w3.org/2000/svg'/>",
        "assets/aluminum.jpg": "",
        "assets/aluminum@2x.jpg": "",
    }
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


@pytest.fixture
def site(tmp_path: Path) -> Path:
    return write_site(tmp_path / "build")


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def found(problems, file: str, *words: str) -> list:
    return [p for p in problems if p.file == file and all(w in p.message for w in words)]


def only(problems, file: str, *words: str):
    """Exactly one problem, on `file`, whose message holds every word; and nothing else."""
    assert len(problems) == 1, "\n".join(map(str, problems))
    assert found(problems, file, *words), str(problems[0])
    return problems[0]


# ---------------------------------------------------------------------------------------------
# the clean site


def test_clean_site_passes(site: Path) -> None:
    assert check_built_site(site, BASE) == []


def test_clean_site_under_a_sub_path_passes(tmp_path: Path) -> None:
    base = "https://example.org/docs/"
    root = write_site(tmp_path / "build", base=base)
    assert check_built_site(root, base) == []
    # the same build checked against the root URL: every absolute link is outside the site
    problems = check_built_site(root, BASE)
    assert found(problems, "index.html", "/docs/assets/style.css", "missing asset")
    assert found(problems, "sitemap.xml", "metal/index.html", "missing from sitemap")


def test_sub_path_link_resolves_to_the_page(tmp_path: Path) -> None:
    base = "https://example.org/docs/"
    root = write_site(tmp_path / "build", base=base)
    links = '<a href="/docs/metal">m</a><a href="https://example.org/docs">h</a>'
    edit(root / "about/index.html", "<main", links + "<main")
    assert check_built_site(root, base) == []
    edit(root / "about/index.html", "<main", '<a href="/metal/">outside</a><main')
    only(check_built_site(root, base), "about/index.html", "broken link", "'/metal/'", "outside")


def test_missing_build_dir(tmp_path: Path) -> None:
    problems = check_built_site(tmp_path / "nope", BASE)
    assert len(problems) == 1 and "site build" in problems[0].message


# ---------------------------------------------------------------------------------------------
# seeded defects, one at a time


def test_broken_internal_link(site: Path) -> None:
    edit(site / "metal/aluminum/index.html", "<main", '<main><a href="/metal/iron/">Iron</a>')
    p = only(check_built_site(site, BASE), "metal/aluminum/index.html", "broken link", "/metal/iron/")
    assert p.field == "a href" and p.line
    assert "metal/iron/index.html" in p.message


def test_broken_relative_link(site: Path) -> None:
    edit(site / "metal/index.html", '<a href="aluminum/">', '<a href="copper/">')
    only(check_built_site(site, BASE), "metal/index.html", "broken link", "copper/")


def test_missing_stylesheet(site: Path) -> None:
    (site / "assets/style.css").unlink()
    problems = check_built_site(site, BASE)
    pages = {"index.html", "metal/index.html", "metal/aluminum/index.html", "about/index.html", "404.html"}
    assert {p.file for p in problems} == pages
    for p in problems:
        assert "missing asset" in p.message and "/assets/style.css" in p.message
        assert p.field == "link href"


def test_missing_srcset_image(site: Path) -> None:
    (site / "assets/aluminum@2x.jpg").unlink()
    p = only(check_built_site(site, BASE), "metal/aluminum/index.html", "missing asset", "aluminum@2x.jpg")
    assert p.field == "img srcset"


def test_missing_meta_description(site: Path) -> None:
    edit(site / "about/index.html", '<meta name="description" content="Who writes this site.">', "")
    p = only(check_built_site(site, BASE), "about/index.html", "missing", "description")
    assert p.field == "meta description"


def test_too_long_description(site: Path) -> None:
    long = ("x" * 150) + " " + ("y" * 10)  # 161 characters
    assert len(long) == 161
    edit(site / "about/index.html", 'content="Who writes this site."', f'content="{long}"')
    only(check_built_site(site, BASE), "about/index.html", "161 characters", "160")
    # 160 is fine
    edit(site / "about/index.html", long, long[:-1])
    assert check_built_site(site, BASE) == []


def test_missing_title_canonical_and_og(site: Path) -> None:
    path = site / "about/index.html"
    edit(path, "<title>About</title>", "")
    edit(path, '<link rel="canonical" href="https://example.org/about/">', "")
    edit(path, '<meta property="og:url" content="https://example.org/about/">', "")
    problems = check_built_site(site, BASE)
    assert {p.field for p in problems} == {"title", "canonical", "og:url"}
    assert all(p.file == "about/index.html" for p in problems)


def test_canonical_must_be_under_base_url(site: Path) -> None:
    edit(site / "about/index.html", 'href="https://example.org/about/"', 'href="/about/"')
    problems = check_built_site(site, BASE)
    assert found(problems, "about/index.html", "canonical URL '/about/' is not an absolute URL")


def test_jsonld_that_does_not_parse(site: Path) -> None:
    edit(site / "metal/aluminum/index.html", '"headline": ', '"headline" ')
    p = only(check_built_site(site, BASE), "metal/aluminum/index.html", "JSON-LD does not parse")
    assert p.field == "json-ld"


def test_jsonld_missing_type(site: Path) -> None:
    edit(site / "metal/aluminum/index.html", '"@type": "Article", ', "")
    only(check_built_site(site, BASE), "metal/aluminum/index.html", "@graph[0]", "no @type")


def test_jsonld_missing_context_and_required_property(site: Path) -> None:
    data = {"@type": "Product", "description": "no name"}
    edit(site / "about/index.html", "</head>", jsonld_script(data) + "</head>")
    problems = check_built_site(site, BASE)
    assert found(problems, "about/index.html", "no @context")
    assert found(problems, "about/index.html", "Product", "missing name")
    assert len(problems) == 2


def test_jsonld_article_without_headline(site: Path) -> None:
    edit(site / "metal/aluminum/index.html", '"headline": "Aluminum laser cleaning", ', "")
    only(check_built_site(site, BASE), "metal/aluminum/index.html", "Article", "missing headline")


def test_jsonld_references_by_id_need_no_more(site: Path) -> None:
    data = {
        "@context": "https://schema.org",
        "@type": "Article",
        "headline": "h",
        "mainEntityOfPage": {"@type": "WebPage", "@id": BASE + "about/"},
        "author": {"@type": "Person", "@id": "#someone"},
        "publisher": {"@type": "Organization"},  # no @id: described here, so it needs a name
    }
    edit(site / "about/index.html", "</head>", jsonld_script(data) + "</head>")
    only(check_built_site(site, BASE), "about/index.html", "Organization (publisher) is missing name")


def test_jsonld_closing_script_inside_text(site: Path) -> None:
    # serialised without escaping '<': a string closes the script element early
    data = dict(JSONLD, description="bad </script><script>alert(1)</script> text")
    raw = f'<script type="application/ld+json">{json.dumps(data)}</script>'
    edit(site / "metal/aluminum/index.html", jsonld_script(JSONLD), raw)
    p = only(check_built_site(site, BASE), "metal/aluminum/index.html", "</script")
    assert p.field == "json-ld"


def test_jsonld_comment_opener_inside_text(site: Path) -> None:
    data = dict(JSONLD, description="see <!-- here")
    raw = f'<script type="application/ld+json">{json.dumps(data)}</script>'
    edit(site / "metal/aluminum/index.html", jsonld_script(JSONLD), raw)
    only(check_built_site(site, BASE), "metal/aluminum/index.html", "<!--")


def test_sitemap_entry_for_missing_page(site: Path) -> None:
    entry = "<url><loc>https://example.org/metal/iron/</loc></url>"
    edit(site / "sitemap.xml", "</urlset>", entry + "</urlset>")
    problems = check_built_site(site, BASE)
    p = only(problems, "sitemap.xml", "https://example.org/metal/iron/", "metal/iron/index.html")
    assert p.field == "loc"


def test_page_missing_from_sitemap(site: Path) -> None:
    edit(site / "sitemap.xml", "<loc>https://example.org/about/</loc>", "<loc>https://example.org/</loc>")
    problems = check_built_site(site, BASE)
    assert found(problems, "sitemap.xml", "about/index.html", "missing from sitemap")
    assert found(problems, "sitemap.xml", "https://example.org/ is listed 2 times")
    assert len(problems) == 2


def test_sitemap_schema_rules(site: Path) -> None:
    path = site / "sitemap.xml"
    edit(path, "<changefreq>weekly</changefreq>", "<changefreq>sometimes</changefreq>")
    edit(path, "<priority>0.5</priority>", "<priority>1.5</priority>")
    edit(path, "<lastmod>2025-01-31</lastmod>", "<lastmod>2025-02-30</lastmod>")
    problems = check_built_site(site, BASE)
    assert [p.field for p in problems] == ["changefreq", "lastmod", "priority"]
    assert all(p.file == "sitemap.xml" and p.message.startswith("url #1:") for p in problems)


def test_sitemap_order_namespace_and_base(site: Path) -> None:
    path = site / "sitemap.xml"
    lastmod, changefreq = "<lastmod>2025-01-31</lastmod>", "<changefreq>weekly</changefreq>"
    edit(path, lastmod + changefreq, changefreq + lastmod)
    assert found(check_built_site(site, BASE), "sitemap.xml", "<lastmod> is repeated or out of order")
    write_site(site)
    edit(path, "<loc>https://example.org/about/</loc>", "<loc>http://example.org/about/</loc>")
    problems = check_built_site(site, BASE)
    assert found(problems, "sitemap.xml", "not an absolute URL under https://example.org/")
    write_site(site)
    edit(path, 'xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"', "")
    only(check_built_site(site, BASE), "sitemap.xml", "root element", "urlset")
    write_site(site)
    path.write_text("<urlset", encoding="utf-8")
    only(check_built_site(site, BASE), "sitemap.xml", "not well-formed")


def test_valid_sitemap_variants(site: Path) -> None:
    path = site / "sitemap.xml"
    text = path.read_text(encoding="utf-8")
    text = text.replace("2025-01-31", " 2004-12-23T18:00:15.5+00:00 ", 1)
    text = text.replace("<priority>0.5</priority>", "<priority>1.0</priority>", 1)
    text = text.replace(
        'xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"',
        'xmlns="http://www.sitemaps.org/schemas/sitemap/0.9" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
        'xmlns:image="http://www.google.com/schemas/sitemap-image/1.1" '
        'xsi:schemaLocation="http://www.sitemaps.org/schemas/sitemap/0.9 '
        'http://www.sitemaps.org/schemas/sitemap/0.9/sitemap.xsd"',
    )
    image = "<image:image><image:loc>https://example.org/a.jpg</image:loc></image:image>"
    text = text.replace("</url>", image + "</url>", 1)
    path.write_text(text, encoding="utf-8")
    assert check_built_site(site, BASE) == []


def test_http_asset_on_https_site(site: Path) -> None:
    edit(site / "about/index.html", "</head>", '<script src="http://cdn.example.com/x.js"></script></head>')
    p = only(check_built_site(site, BASE), "about/index.html", "http://", "http://cdn.example.com/x.js")
    assert p.field == "script src"
    # a plain link to an http:// page is not mixed content; an http site may load http assets
    write_site(site)
    edit(site / "about/index.html", "<main", '<a href="http://other.example/">o</a><main')
    assert check_built_site(site, BASE) == []


def test_http_site_may_load_http_assets(tmp_path: Path) -> None:
    base = "http://example.org/"
    root = write_site(tmp_path / "build", base=base)
    edit(root / "about/index.html", "</head>", '<img src="http://cdn.example.com/x.png"></head>')
    assert check_built_site(root, base) == []


def test_required_files_and_robots(site: Path) -> None:
    (site / "404.html").unlink()
    edit(site / "robots.txt", "sitemap.xml", "sitemap-index.xml")
    problems = check_built_site(site, BASE)
    assert found(problems, "404.html", "missing from the build")
    assert found(problems, "robots.txt", "sitemap-index.xml")
    assert len(problems) == 2


def test_problems_are_sorted_and_deterministic(site: Path) -> None:
    (site / "assets/style.css").unlink()
    edit(site / "sitemap.xml", "</urlset>", "<url><loc>https://example.org/zinc/</loc></url></urlset>")
    first = check_built_site(site, BASE)
    assert first == check_built_site(site, BASE)
    assert [(p.file, p.message) for p in first] == sorted((p.file, p.message) for p in first)


# ---------------------------------------------------------------------------------------------
# link resolution


def test_link_resolution_rules(site: Path) -> None:
    (site / "files").mkdir()
    (site / "files/data.csv").write_text("a,b\n", encoding="utf-8")
    (site / "empty").mkdir()
    links = [
        "/about",  # no slash: about/index.html
        "/files/data.csv",
        "//example.org/metal/",  # protocol-relative, same host
        "https://EXAMPLE.org:443/metal/aluminum/",  # host case and default port
        "//cdn.other.example/x.js",
        "mailto:a@b.c", "tel:+123", "javascript:void(0)", "data:text/plain,hi", "ftp://example.org/x",
        "#top", "?q=1", "",
        "metal/aluminum/index.html",
        "/caf%C3%A9/",  # percent-encoded path of a real directory
    ]
    (site / "café").mkdir()
    (site / "café/index.html").write_text((site / "about/index.html").read_text(encoding="utf-8")
        .replace("https://example.org/about/", "https://example.org/caf%C3%A9/"), encoding="utf-8")
    edit(site / "sitemap.xml", "</urlset>", "<url><loc>https://example.org/caf%C3%A9/</loc></url></urlset>")
    body = "".join(f'<a href="{href}">x</a>' for href in links)
    edit(site / "index.html", "<main", body + "<main")
    assert check_built_site(site, BASE) == []

    broken = '<a href="/empty/">e</a><a href="/files/">f</a><a href="/files/data.CSV">c</a>'
    edit(site / "index.html", "<main", broken + "<main")
    problems = check_built_site(site, BASE)
    assert sorted(p.message.split(":")[0] for p in problems) == [
        "broken link '/empty/'", "broken link '/files/'", "broken link '/files/data.CSV'",
    ]


def test_base_element_changes_relative_links(site: Path) -> None:
    edit(site / "about/index.html", "<head>", '<head><base href="/metal/">')
    edit(site / "about/index.html", "<main", '<a href="aluminum/">rel to base</a><main')
    assert check_built_site(site, BASE) == []


# ---------------------------------------------------------------------------------------------
# the page scanner agrees with html.parser


class _Reference(HTMLParser):
    """What html.parser sees on a page, in the scanner's terms."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.refs: set[tuple[str, str, str]] = set()
        self.titles: list[str] = []
        self.metas: list[dict[str, str]] = []
        self.ld = 0
        self._title: list[str] | None = None
        self._svg = 0
        self._textarea = False

    def handle_starttag(self, tag, attrs):
        if self._textarea:  # html.parser does not know textarea holds text only; browsers do
            return
        if tag == "textarea":
            self._textarea = True
            return
        a: dict[str, str] = {}
        for k, v in attrs:
            a.setdefault(k, v or "")
        if tag == "svg":
            self._svg += 1
        elif tag == "title" and not self._svg:
            self._title = []
        elif tag == "meta":
            self.metas.append(a)
        elif tag == "script" and a.get("type") == "application/ld+json":
            self.ld += 1
        elif tag in check_module._URL_ATTRS:
            rels = set(a.get("rel", "").lower().split())
            for attr, kind in check_module._URL_ATTRS[tag].items():
                if attr in a:
                    kind = "asset" if rels & check_module._ASSET_RELS else kind
                    urls = check_module._srcset_urls(a[attr]) if attr == "srcset" else [a[attr].strip()]
                    self.refs.update((f"{tag} {attr}", u, kind) for u in urls)

    def handle_endtag(self, tag):
        if tag == "textarea":
            self._textarea = False
        elif tag == "svg":
            self._svg -= 1
        elif tag == "title" and self._title is not None:
            self.titles.append("".join(self._title))
            self._title = None

    def handle_data(self, data):
        if self._title is not None:
            self._title.append(data)


TRICKY = """<!DOCTYPE html><HTML><HEAD><TITLE>Caf&eacute; &amp; co</TITLE>
<META NAME="description" CONTENT="Upper &quot;case&quot;">
<meta property='og:title' content='single'><meta property=og:url content=https://example.org/x/>
<LINK REL="Stylesheet" HREF="/a.css"><link rel="preload icon" href="/i.png">
<script>var s = "<a href='/in-script/'>"; if (a < b && c > d) {}</script>
<script type="application/ld+json">{"@context": "https://schema.org", "@type": "Thing", "name": "<a href=x>"}</script>
<style>a[href="/in-style/"] { color: red }</style>
</HEAD><BODY>
<!-- <a href="/in-comment/"> -->
<!--> <a href="/after-abrupt-comment/">
<A HREF="/upper/">u</A><a title="x > y" href="/after-gt/">g</a><a href=/unquoted/?a=1&amp;b=2>q</a>
<a href="/first/" href="/second/">dup</a><a data-href="/not-a-link/">d</a><a href>empty</a>
<textarea><a href="/in-textarea/"></textarea>
<svg viewBox="0 0 1 1"><title>icon</title><use xlink:href="/sprite.svg#i"/></svg><svg/>
<img src="/p.jpg" srcset="/p-1.jpg 1x, /p,2.jpg 2x , /p-3.jpg 3x" alt=""><picture><source srcset="/s.webp"></picture>
<video poster="/poster.jpg"><source src="/v.mp4"><track src="/t.vtt"></video>
<iframe src="/frame/"></iframe><area href="/area/"><embed src="/e.swf">
</BODY></HTML>
"""


@pytest.mark.parametrize("name", ["tricky", "index.html", "metal/aluminum/index.html", "404.html"])
def test_scanner_agrees_with_html_parser(site: Path, name: str) -> None:
    data = TRICKY.encode() if name == "tricky" else (site / name).read_bytes()
    ref = _Reference()
    ref.feed(data.decode())
    ref.close()
    scan = check_module._PageScan(data)
    assert {(f, u, k) for f, u, k, _ in scan.refs} == ref.refs
    assert scan.titles == ref.titles
    names = [m.get("name", m.get("property", "")).lower() for m in ref.metas]
    assert scan.descriptions == [m.get("content", "") for m, n in zip(ref.metas, names) if n == "description"]
    assert sorted(scan.og) == sorted({n for n in names if n.startswith("og:")})
    assert len(scan.ld_json) == ref.ld
    if name == "tricky":
        assert scan.titles == ["Café & co"]
        urls = {u for _, u, _, _ in scan.refs}
        expected = {"/upper/", "/after-gt/", "/unquoted/?a=1&b=2", "/first/", "/p,2.jpg", "/sprite.svg#i"}
        assert expected <= urls
        assert not any("in-" in u or "second" in u or "not-a-link" in u for u in urls)
        assert "/after-abrupt-comment/" in urls


# ---------------------------------------------------------------------------------------------
# the workflow


def test_workflow_push_commands_in_order() -> None:
    assert workflow_site_commands(WORKFLOW) == [["site", "review"], ["site", "build", "--frozen"], ["site", "check"]]


def test_workflow_pull_request_commands_in_order() -> None:
    assert workflow_site_commands(WORKFLOW, job="pull-request") == [
        ["site", "status"],
        ["site", "review"],  # --since "origin/${{ github.base_ref }}" is left out
        ["site", "build", "--frozen"],
        ["site", "check"],
    ]


def test_workflow_shape() -> None:
    data = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    on = data.get("on", data.get(True))  # YAML 1.1 reads a bare `on` as true
    assert on["push"]["branches"] == ["main"] and "pull_request" in on
    jobs = data["jobs"]
    assert "pull_request" not in jobs["build"]["if"] or "!=" in jobs["build"]["if"]
    assert jobs["pull-request"]["if"] == "github.event_name == 'pull_request'"
    assert jobs["build"]["permissions"] == {"contents": "read", "pages": "read"}
    uses = [s.get("uses", "") for s in jobs["build"]["steps"]]
    assert any(u.startswith("actions/configure-pages@") for u in uses)
    upload = next(s for s in jobs["build"]["steps"] if "upload-pages-artifact@" in s.get("uses", ""))
    assert upload["with"]["path"] == "build"
    deploy = jobs["deploy"]
    assert deploy["needs"] == "build"
    assert deploy["permissions"] == {"pages": "write", "id-token": "write"}
    assert deploy["environment"]["name"] == "github-pages"
    assert deploy["concurrency"]["group"] == "pages"
    assert deploy["steps"][0]["uses"].startswith("actions/deploy-pages@")
    # nothing in the pull-request job deploys
    assert not any("pages" in s.get("uses", "") for s in jobs["pull-request"]["steps"])
    # every site command is its own run line
    for job in jobs.values():
        for step in job.get("steps", []):
            lines = [ln.strip() for ln in step.get("run", "").splitlines() if ln.strip()]
            if any(ln.startswith("site ") for ln in lines):
                assert len(lines) == 1


def test_workflow_helper_drops_expressions(tmp_path: Path) -> None:
    wf = tmp_path / "wf.yml"
    wf.write_text(
        "jobs:\n  build:\n    steps:\n"
        "      - run: pip install .\n"
        '      - run: site build --frozen --base-url "${{ steps.pages.outputs.base_url }}/"\n'
        "      - run: |\n          echo hi\n          site check \\\n            --root .\n",
        encoding="utf-8",
    )
    assert workflow_site_commands(wf) == [["site", "build", "--frozen"], ["site", "check", "--root", "."]]
