"""Where the warehouse's parts live: ``SERP_ETL_STORAGE_URL``.

Unset: ``<data dir>/warehouse`` (the laptop default). ``s3://bucket/prefix``: any S3-compatible
store, through s3fs, with the endpoint and credentials of the usual ``AWS_*`` variables
(``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_REGION``...).
"""

from __future__ import annotations

import os
from pathlib import Path

from serp_etl.storage.base import Storage
from serp_etl.storage.local import LocalStorage

STORAGE_URL_ENV = "SERP_ETL_STORAGE_URL"
OBJECT_SCHEMES = ("s3",)


class StorageSettingInvalid(ValueError):
    """``SERP_ETL_STORAGE_URL`` names no storage serp-etl can use."""


def storage_url() -> str | None:
    return os.environ.get(STORAGE_URL_ENV) or None


def open_storage(data_dir: Path) -> Storage:
    url = storage_url()
    if url is None:
        return LocalStorage(data_dir / "warehouse")
    scheme, _, rest = url.partition("://")
    if scheme not in OBJECT_SCHEMES or not rest.strip("/"):
        raise StorageSettingInvalid(
            f"{STORAGE_URL_ENV}={url!r}: expected s3://bucket/prefix "
            "(or unset, for the data dir's warehouse/)"
        )
    from serp_etl.storage.objects import ObjectStorage

    return ObjectStorage(url, data_dir, s3_filesystem())


def s3_filesystem():
    """An s3fs file system from the ``AWS_*`` environment, with no listing cache: a reader
    must see the commits made since it last looked."""
    from serp_etl.storage.objects import PartsS3FileSystem

    return PartsS3FileSystem(use_listings_cache=False, cache_regions=False)
