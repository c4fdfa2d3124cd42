"""What the site knows beyond one material, for the validators that need it: the names of its
materials and of the people in its data/ files, and the category and site texts prompts show."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Iterable, Mapping


@dataclass(frozen=True)
class SiteFacts:
    materials: tuple[str, ...] = ()  # every material name of the site
    people: tuple[str, ...] = ()  # every `name` of a mapping in data/*.yaml (authors...)
    categories: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # key -> (title, description)
    site_texts: tuple[str, ...] = ()  # the site's title and description

    @cached_property
    def material_index(self) -> tuple[dict[tuple[str, ...], str], int]:
        from .entities import material_index

        return material_index(self.materials)

    def category_texts(self, key: Any) -> tuple[str, ...]:
        return self.categories.get(key, ()) if isinstance(key, str) else ()

    @classmethod
    def of_site(cls, site: Any) -> "SiteFacts":
        """From a loaded generator.content.Site (names come from the material summaries)."""
        config = site.config
        return cls(materials=tuple(sorted({m.name for m in site.materials.values()})),
                   people=tuple(sorted(set(_names(site.data)))),
                   categories={k: tuple(t for t in (c.get("title", ""), c.get("description", "")) if t)
                               for k, c in config.categories.items()},
                   site_texts=tuple(t for t in (config.title, getattr(config, "description", "")) if t))


def _names(node: Any) -> Iterable[str]:
    if isinstance(node, dict):
        name = node.get("name")
        if isinstance(name, str) and name.strip():
            yield " ".join(name.split())
        for value in node.values():
            yield from _names(value)
    elif isinstance(node, list):
        for value in node:
            yield from _names(value)
