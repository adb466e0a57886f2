"""Named only by the ``dagster.yaml`` of a Dagster home serp-etl made before its instance used
Dagster's own storage config (``serp_etl.instance_home``): such a home stops here, with the
one command that upgrades it, instead of Dagster's "couldn't import module"."""

raise ImportError(
    "this Dagster home's dagster.yaml names serp_etl.dagster_instance, the storage class of an "
    "earlier serp-etl: run `serp-etl init` once (with DAGSTER_HOME set to this home) to upgrade "
    "it to Dagster's own storage config; its runs and schedules are kept"
)
