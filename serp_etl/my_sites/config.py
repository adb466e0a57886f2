"""What is mine: my sites, by group, and where each tracked image may be shown. Read from the
targets file, beside the targets:

    [[sites]]
    group = "acme"                        # optional: a project or client ("default" if unset)
    domains = ["acme.com"]                # each with its subdomains: www.acme.com, shop.acme.com
    hosts = ["acme.github.io"]            # exactly these hosts, not their subdomains

    [[semscraper]]
    keyword = "acme shoes"
    group = "acme"                        # optional: whose target it is ("default" if unset)

    [[dataforseo]]
    image_url = "https://acme.com/hero.jpg"
    group = "acme"
    allowed_domains = ["licensee.com"]    # where it may be shown besides the group's sites

A target is mine (its ranks and its image's hosts watched, alerts raised) when it names a
group or allowed domains, or, when a ``[[sites]]`` entry has no group, every target is.

None of these fields is part of a target's identity (its tag or key): moving a target to
another group, or allowing a domain, never makes the day's task a new, paid one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from serp_etl.core.targets import TargetConfigError, read_targets_file, read_toml, target_name
from serp_etl.providers.instances import provider_of

SITES = "sites"
DEFAULT_GROUP = "default"
# The fields of a target entry that say whose it is; each provider's parser leaves them out.
OWNERSHIP_FIELDS = {"dataforseo": {"group", "allowed_domains"}, "semscraper": {"group"}}
_TARGET_TEXT = {"dataforseo": "image_url", "semscraper": "keyword"}
_SITE_FIELDS = {"group", "domains", "hosts"}
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")

DOMAINS_SCHEMA = pa.schema(
    [("group_name", pa.string()), ("domain", pa.string()), ("with_subdomains", pa.bool_())]
)
TARGETS_SCHEMA = pa.schema(
    [("provider", pa.string()), ("target_key", pa.string()), ("group_name", pa.string())]
)
ALLOWED_SCHEMA = pa.schema(
    [("image_url", pa.string()), ("domain", pa.string()), ("with_subdomains", pa.bool_())]
)


@dataclass(frozen=True)
class Domain:
    """A domain of mine or an allowed one: ``name`` itself, and with ``with_subdomains`` every
    host ending in ``.name`` (the views' ``analysis._on_domain``)."""

    name: str
    with_subdomains: bool


@dataclass(frozen=True)
class MySites:
    """Each group's domains; the group of each target that is mine, by (provider, target key);
    each image's own allowed domains. A target is mine when it names a group or allowed
    domains, or when a [[sites]] entry without a group (the default group) exists; the
    others are collected and never watched."""

    groups: dict[str, tuple[Domain, ...]] = field(default_factory=dict)
    targets: dict[tuple[str, str], str] = field(default_factory=dict)
    allowed: dict[str, tuple[Domain, ...]] = field(default_factory=dict)

    def tables(self) -> dict[str, pa.Table]:
        """The settings as the small tables the views read (``analysis``)."""
        return {
            "my_domains": pa.Table.from_pylist(
                [
                    {"group_name": group, "domain": d.name, "with_subdomains": d.with_subdomains}
                    for group, domains in sorted(self.groups.items())
                    for d in domains
                ],
                schema=DOMAINS_SCHEMA,
            ),
            "my_targets": pa.Table.from_pylist(
                [
                    {"provider": provider, "target_key": key, "group_name": group}
                    for (provider, key), group in sorted(self.targets.items())
                ],
                schema=TARGETS_SCHEMA,
            ),
            "image_allowed_domains": pa.Table.from_pylist(
                [
                    {"image_url": image, "domain": d.name, "with_subdomains": d.with_subdomains}
                    for image, domains in sorted(self.allowed.items())
                    for d in domains
                ],
                schema=ALLOWED_SCHEMA,
            ),
        }


def target_key(provider: str, text: str) -> str:
    """How a target is matched with its SERPs: a keyword without case and extra spaces (as
    Google reads it, and as the SemScraper parser tells duplicates); an image by its URL."""
    return " ".join(text.split()).lower() if provider == "semscraper" else text


def _domain(value: object, exact: bool) -> Domain:
    """A domain as written by the user, or ``ValueError`` saying why it is not one."""
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not a domain (a string like 'example.com')")
    text = value.strip().lower().rstrip(".")
    if "/" in text or ":" in text:
        host = re.sub(r"^[a-z][a-z0-9+.-]*://", "", text).split("/")[0].split(":")[0]
        raise ValueError(f"{value!r} is not a domain: write the domain alone, e.g. {host!r}")
    try:
        text = text.encode("idna").decode("ascii")  # münchen.de -> xn--mnchen-3ya.de
    except UnicodeError:
        raise ValueError(f"{value!r} is not a domain") from None
    labels = text.split(".")
    if len(labels) < 2 or len(text) > 253 or not all(_LABEL.match(label) for label in labels):
        raise ValueError(f"{value!r} is not a domain (a name like 'example.com')")
    return Domain(text, not exact)


def _domains(
    entry: dict, key: str, exact: bool, problems: list[str], name: str
) -> tuple[Domain, ...]:
    values = entry.get(key, [])
    if not isinstance(values, list):
        problems.append(f"{name}: {key} must be a list of domains, got {values!r}")
        return ()
    found = []
    for value in values:
        try:
            found.append(_domain(value, exact))
        except ValueError as error:
            problems.append(f"{name}: {key}: {error}")
    return tuple(dict.fromkeys(found))


def _sites(entries: object, problems: list[str]) -> dict[str, tuple[Domain, ...]]:
    if not isinstance(entries, list):
        problems.append(f"use [[{SITES}]] tables, one per group of sites")
        return {}
    groups: dict[str, tuple[Domain, ...]] = {}
    first: dict[str, int] = {}
    for number, entry in enumerate(entries, start=1):
        name = f"{SITES} #{number}"
        if not isinstance(entry, dict):
            problems.append(f"{name}: expected a table of fields")
            continue
        unknown = sorted(set(entry) - _SITE_FIELDS)
        if unknown:
            problems.append(
                f"{name}: unknown field(s) {', '.join(unknown)}; known: "
                f"{', '.join(sorted(_SITE_FIELDS))}"
            )
            continue
        group = entry.get("group", DEFAULT_GROUP)
        if not isinstance(group, str) or not group.strip():
            problems.append(f"{name}: group must be a name, got {group!r}")
            continue
        if group in first:
            problems.append(
                f"{name}: group {group!r} is already declared by {SITES} "
                f"#{first[group]}; list all its domains there"
            )
            continue
        first[group] = number
        domains = _domains(entry, "domains", False, problems, name) + _domains(
            entry, "hosts", True, problems, name
        )
        if not entry.get("domains") and not entry.get("hosts"):
            problems.append(f"{name}: no domains and no hosts: list at least one")
        groups[group] = domains
    return groups


def parse_my_sites(text: str, source: str) -> MySites:
    """The file's sites and each target's group and allowed domains, or ``TargetConfigError``
    with every problem found. Entries that are not targets (no keyword or image) are left to
    their provider's parser, which names them."""
    document = read_toml(text, source)
    problems: list[str] = []
    groups = _sites(document.get(SITES, []), problems)
    targets: dict[tuple[str, str], str] = {}
    allowed: dict[str, tuple[Domain, ...]] = {}
    where: dict[tuple[str, str], int] = {}
    # Each provider instance's section ([[dataforseo]], [[dataforseo_client_b]], ...).
    sections = [(key, provider) for key in document if (provider := provider_of(key))]
    for section, provider in sections:
        text_field = _TARGET_TEXT[provider]
        entries = document.get(section, [])
        for number, entry in enumerate(entries if isinstance(entries, list) else [], start=1):
            if not isinstance(entry, dict) or not isinstance(entry.get(text_field), str):
                continue
            name = target_name(section, number, entry[text_field])
            group = entry.get("group", DEFAULT_GROUP)
            if not isinstance(group, str) or not group.strip():
                problems.append(f"{name}: group must be a name, got {group!r}")
                continue
            if "group" in entry and group not in groups:
                problems.append(
                    f"{name}: group {group!r} has no [[{SITES}]] entry; declared: "
                    f"{', '.join(map(repr, groups)) or 'none'}"
                )
            mine = "group" in entry or DEFAULT_GROUP in groups or "allowed_domains" in entry
            if not mine:  # nothing says it is mine: collected, never watched
                continue
            key = (section, target_key(provider, entry[text_field]))
            if key in targets and targets[key] != group:
                problems.append(
                    f"{name}: in group {group!r}, but target #{where[key]} of the "
                    f"same {text_field} is in {targets[key]!r}: one group each"
                )
                continue
            targets[key], where[key] = group, number
            if provider == "dataforseo" and "allowed_domains" in entry:
                found = _domains(entry, "allowed_domains", False, problems, name)
                allowed[key[1]] = tuple(dict.fromkeys(allowed.get(key[1], ()) + found))
    if problems:
        raise TargetConfigError(source, problems)
    return MySites(groups, targets, allowed)


def load_my_sites(path: Path) -> MySites:
    return parse_my_sites(read_targets_file(path), str(path))


def target_fields(entry: dict, provider: str) -> dict:
    """A target entry without the fields that say whose it is (``OWNERSHIP_FIELDS``)."""
    return {k: v for k, v in entry.items() if k not in OWNERSHIP_FIELDS[provider]}
