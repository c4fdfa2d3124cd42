"""site.yaml -> SiteConfig. Every problem is reported at once, naming the key and line."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

from .errors import InputError, Problem
from . import yamlio

CONFIG_FILE = "site.yaml"

_SITE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["title", "base_url", "categories"],
    "additionalProperties": False,
    "properties": {
        "title": {"type": "string", "minLength": 1},
        "description": {"type": "string"},
        "base_url": {"type": "string", "pattern": "^https?://[^/\\s]+(/[^\\s]*)?$"},
        "language": {"type": "string", "pattern": "^[a-zA-Z]{2,3}(-[a-zA-Z0-9]+)*$"},
        "output_dir": {"type": "string", "minLength": 1},
        "material_schema": {"type": "string", "minLength": 1},
        "categories": {
            "type": "object",
            "minProperties": 1,
            "propertyNames": {"pattern": "^[a-z0-9-]+$"},
            "additionalProperties": {
                "type": "object",
                "required": ["title"],
                "additionalProperties": False,
                "properties": {"title": {"type": "string"}, "description": {"type": "string"}},
            },
        },
        "llm": {"type": "object"},  # validated against the llm package's own schema below
    },
}

# Folders the build owns or reads: the output dir may be none of them.
_RESERVED = {"materials", "components", "layouts", "content", "data", "assets", ".cache", ".git"}


@dataclass(frozen=True)
class SiteConfig:
    title: str
    base_url: str  # always ends with "/"
    description: str = ""
    language: str = "en"
    output_dir: str = "build"
    material_schema: str | None = None
    categories: dict[str, dict[str, str]] = field(default_factory=dict)
    llm: dict[str, Any] = field(default_factory=dict)

    @property
    def base_path(self) -> str:
        """The path part of base_url ("/" or "/sub/"): internal links are prefixed with it."""
        return urlsplit(self.base_url).path or "/"

    def with_base_url(self, base_url: str | None) -> "SiteConfig":
        if not base_url:
            return self
        return _replace(self, base_url=_normalise_base_url(base_url))


def _replace(cfg: SiteConfig, **changes: Any) -> SiteConfig:
    from dataclasses import replace

    return replace(cfg, **changes)


def _normalise_base_url(url: str) -> str:
    return url if url.endswith("/") else url + "/"


def check_base_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise InputError(f"--base-url must be an absolute http(s) URL, got {url!r}")


def load_config(root: Path, text: str | None = None) -> SiteConfig:
    """Parse and validate site.yaml; raise InputError listing every problem."""
    path = root / CONFIG_FILE
    if text is None:
        if not path.is_file():
            raise InputError(f"no {CONFIG_FILE} in {root}: is this a site? (`site init DIR` makes one)")
        text = yamlio.read_text(path)
    try:
        data = yamlio.parse(text, CONFIG_FILE)
    except yamlio.YamlSyntaxError as exc:
        raise InputError("site.yaml is not valid YAML", [exc.problem]) from None
    problems = validate_config_data(data, text)
    if problems:
        raise InputError(f"{CONFIG_FILE} has {len(problems)} problem(s)", problems)
    output_dir = data.get("output_dir", "build")
    return SiteConfig(
        title=data["title"],
        base_url=_normalise_base_url(data["base_url"]),
        description=data.get("description", ""),
        language=data.get("language", "en"),
        output_dir=output_dir,
        material_schema=data.get("material_schema"),
        categories={k: {"title": v["title"], "description": v.get("description", "")}
                    for k, v in data["categories"].items()},
        llm=data.get("llm") or {},
    )


def validate_config_data(data: Any, text: str) -> list[Problem]:
    from .llm.settings import LLM_SETTINGS_SCHEMA

    if not isinstance(data, dict):
        return [Problem(CONFIG_FILE, "must be a mapping of settings", 1)]
    problems = validation_problems(_SITE_SCHEMA, data, text, CONFIG_FILE)
    if isinstance(data.get("llm"), dict):
        problems += validation_problems(LLM_SETTINGS_SCHEMA, data["llm"], text, CONFIG_FILE, prefix=("llm",))
    out = data.get("output_dir")
    if isinstance(out, str):
        problem = _output_dir_problem(out)
        if problem:
            problems.append(Problem(CONFIG_FILE, problem, yamlio.line_of(text, ["output_dir"]), "output_dir"))
    return problems


def _output_dir_problem(out: str) -> str | None:
    p = PurePosixPath(out)
    if p.is_absolute() or ".." in p.parts or "\\" in out:
        return f"output_dir {out!r} must be a folder inside the site, without '..'"
    if not p.parts or p.parts[0] in _RESERVED:
        return f"output_dir {out!r} would overwrite the site's own {p.parts[0] if p.parts else '.'!r} folder"
    return None


class FastValidator:
    """A JSON Schema: jsonschema-rs says whether data is valid, ~100x faster than jsonschema,
    which takes a tenth of a second just to import; jsonschema explains what is not."""

    def __init__(self, schema: dict):
        import jsonschema_rs

        self.schema = schema
        self._rs = jsonschema_rs.validator_for(schema)

    @property
    def explainer(self) -> Any:
        from jsonschema import Draft202012Validator  # imported only when something is invalid

        return Draft202012Validator(self.schema)

    def is_valid(self, data: Any) -> bool:
        try:
            return self._rs.is_valid(data)
        except ValueError:  # a value JSON has no type for (e.g. a YAML date): let jsonschema judge
            return False


def validation_problems(schema: dict, data: Any, text: str, rel: str, prefix: tuple = ()) -> list[Problem]:
    """Every problem of `data` against a JSON Schema, with the offending key's path and line."""
    validator = FastValidator(schema)
    return [] if validator.is_valid(data) else schema_problems(validator.explainer, data, text, rel, prefix)


def schema_problems(validator: Any, data: Any, text: str, rel: str, prefix: tuple = ()) -> list[Problem]:
    """Every jsonschema error of `data` as a Problem with the offending key's dotted path and line."""
    problems = []
    for error in sorted(validator.iter_errors(data), key=lambda e: [str(p) for p in e.absolute_path]):
        path = list(prefix) + list(error.absolute_path)
        # A missing required key is reported at its parent, named in the field.
        if error.validator == "required":
            missing = error.message.split("'")[1] if "'" in error.message else None
            field_path = path + ([missing] if missing else [])
            message = f"missing required field {missing!r}" if missing else error.message
        elif error.validator == "additionalProperties":
            field_path = path
            message = error.message.replace("Additional properties are not allowed", "unknown field(s)")
        else:
            field_path = path
            message = error.message
        problems.append(Problem(rel, message, yamlio.line_of(text, path),
                                ".".join(str(p) for p in field_path) or None))
    return problems
