"""The project's defs folder: every module here is loaded by ``dg.load_from_defs_folder``
(``serp_etl.definitions``), as in any ``dg`` project. Each of serp-etl's own modules declares
what it adds in one ``defs = dg.Definitions(...)``; add your own assets, checks, schedules and
components beside them (``dg scaffold defs dagster.asset my_asset.py`` writes one here)."""
