"""Durable state: the ledger (what was posted, paid and collected), the shared rate limits and
the submit lock, in SQLite files of the data dir or, for a deployment whose runs land on
several hosts, in one Postgres database (``SERP_ETL_STATE_URL``)."""
