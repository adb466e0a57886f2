"""The Dagster code location of serp-etl (``dagster dev`` and ``dg dev`` in the repo root load
it): everything in the defs folder, ``serp_etl/defs``, ours and yours, loaded as ``dg`` projects
load theirs."""

import warnings
from pathlib import Path

import dagster as dg

import serp_etl.defs

PACKAGE = Path(__file__).resolve().parent

# Notes from Dagster about choices made here, knowingly, not to be repeated at every load (in
# the processes that load this code location; others' notes still show):
# - its loader of a plain module of the defs folder calls its own preview functions;
warnings.filterwarnings("ignore", r"Function `load_definitions_from_module", dg.PreviewWarning)
# - the daily and collect jobs run one day per run, by design, while the flattening step's
#   single-run backfill policy serves backfills launched from the asset graph: Dagster warns,
#   at each resolution of those jobs, that their assets' policies differ.
warnings.filterwarnings(
    "ignore",
    r"Asset job (dataforseo|semscraper)\w*_(daily|collect) "
    r"materializes assets with varying BackfillPolicies",
    UserWarning,
)


def load_definitions() -> dg.Definitions:
    if (PACKAGE.parent / "pyproject.toml").is_file():  # a checkout, installed editable
        return dg.load_from_defs_folder(path_within_project=PACKAGE)
    # Installed from a wheel: no project file beside the package. The same folder, named
    # directly instead of through [tool.dg.project] (what load_from_defs_folder reads), and
    # as quiet: that function silences Dagster's notes about its own beta and preview parts.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.BetaWarning)
        warnings.simplefilter("ignore", dg.PreviewWarning)
        return dg.ComponentTree.from_module(
            defs_module=serp_etl.defs, project_root=PACKAGE
        ).build_defs()


defs = load_definitions()
