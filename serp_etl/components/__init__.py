"""serp-etl's Dagster components (``dg list components`` shows them; ``defs.yaml`` files in the
defs folder instantiate them)."""

from serp_etl.components.serp_provider import SerpProviderComponent

__all__ = ["SerpProviderComponent"]
