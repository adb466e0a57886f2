"""The Dagster code location of serp-etl (``dagster dev`` and ``dg dev`` in the repo root load
it): everything in the defs folder, ``serp_etl/defs``, ours and yours, loaded as ``dg`` projects
load theirs."""

import warnings
from pathlib import Path

import dagster as dg

import serp_etl.defs

PACKAGE = Path(__file__).resolve().parent


def load_definitions() -> dg.Definitions:
    with warnings.catch_warnings():
        # Dagster's loader of a plain module of the folder calls its own preview functions:
        # not the user's choice, so not said at every load. Others' preview notes still show.
        warnings.filterwarnings("ignore", r"Function `load_definitions_from_module",
                                dg.PreviewWarning)
        if (PACKAGE.parent / "pyproject.toml").is_file():  # a checkout, installed editable
            return dg.load_from_defs_folder(path_within_project=PACKAGE)
        # Installed from a wheel: no project file beside the package. The same folder, named
        # directly instead of through [tool.dg.project] (what load_from_defs_folder reads).
        return dg.ComponentTree.from_module(defs_module=serp_etl.defs,
                                            project_root=PACKAGE).build_defs()


defs = load_definitions()
