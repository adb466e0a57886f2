"""Provider instances: one provider's account, market, budget and targets under a name.

An instance is named after its provider, alone for the default instance (``dataforseo``) or
with a suffix for another (``dataforseo_client_b``). The name is the instance's namespace
everywhere: its asset keys (``dataforseo_client_b/organic``), jobs and schedule, its warehouse
folder and views (``dataforseo_client_b_organic``), its ledger scope (its tasks, locks and
budget), its section of the targets file (``[[dataforseo_client_b]]``) and, for DataForSEO,
the tags of its tasks. The provider is read from the name, so every tool that meets an
instance only in the data (``serp-etl sql``, imports, the views) knows what it holds.
"""

from __future__ import annotations

import re

PROVIDERS = ("dataforseo", "semscraper")
_NAME = re.compile(rf"({'|'.join(PROVIDERS)})(?:_[a-z0-9]+)*")
NAME_RULE = (
    "a provider's name (dataforseo, semscraper), alone or followed by _ and lower-case "
    "letters or digits (dataforseo_client_b)"
)


class InstanceNameError(ValueError):
    """A name that is not an instance's (see ``NAME_RULE``)."""


def provider_of(name: str) -> str | None:
    """The provider of the instance ``name``; None if ``name`` is not an instance's."""
    found = _NAME.fullmatch(name)
    return found.group(1) if found else None


def check_instance(name: object, provider: str | None = None) -> str:
    """``name`` if it names an instance (of ``provider``, if given); else InstanceNameError."""
    if not isinstance(name, str) or (of := provider_of(name)) is None:
        raise InstanceNameError(f"{name!r} is not an instance name: {NAME_RULE}")
    if provider is not None and of != provider:
        raise InstanceNameError(
            f"{name!r} is not an instance name of {provider}: it must be {provider} or "
            f"start with {provider}_"
        )
    return name
