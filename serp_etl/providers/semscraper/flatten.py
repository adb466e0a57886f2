"""Retrieved SemScraper SERP objects -> the serps and items tables. Pure functions, no I/O."""

from collections.abc import Iterable, Iterator

import pyarrow as pa

from serp_etl.core.flatten import flatten_table
from serp_etl.core.jsondecode import Undecodable, decode
from serp_etl.providers.semscraper.schema import FLAT_SCHEMAS, ITEMS, SERPS


def flatten_serps(serps: Iterable[dict]) -> dict[str, pa.Table]:
    """Flatten SERP objects (elements of a retrieve-by-ids ``data`` array, or callback bodies).

    Block-level keys other than ``type`` and ``items`` are kept in the serps row's ``extra``;
    items outside a list, or that are not objects, in its ``invalid_values``.
    """
    serp_ids: list[str] = []
    serp_rows: list[dict] = []
    item_keys: tuple[list, list, list] = ([], [], [])
    item_rows: list[dict] = []
    for serp in serps:
        row = {key: value for key, value in serp.items() if key not in ("id", "results")}
        if row.get("geolocation") is False:
            row["geolocation"] = None  # the API's way of saying "not set"
        results = serp.get("results")
        strays: dict = {}
        if type(results) is list:
            for block_index, block in enumerate(results):
                _block(serp["id"], block_index, block, item_keys, item_rows, strays)
        elif results is not None:
            strays["results"] = results
        if strays:
            row["results"] = strays  # undeclared: lands in extra, nothing is dropped
        serp_ids.append(serp["id"])
        serp_rows.append(row)
    tables = flatten_table(SERPS, [serp_ids], serp_rows)
    tables.update(flatten_table(ITEMS, list(item_keys), item_rows))
    assert tables.keys() == FLAT_SCHEMAS.keys()
    return tables


def _block(serp_id: str, block_index: int, block: object, keys, rows, strays: dict) -> None:
    if type(block) is not dict or type(block.get("items")) is not list:
        strays[str(block_index)] = block
        return
    extra = {k: v for k, v in block.items() if k not in ("type", "items")}
    if extra:
        strays[str(block_index)] = extra
    for item_index, item in enumerate(block["items"]):
        if type(item) is not dict:
            strays.setdefault(f"{block_index}.items", []).append(item)
            continue
        keys[0].append(serp_id)
        keys[1].append(block_index)
        keys[2].append(item_index)
        rows.append({**item, "block_type": block.get("type")})


def serps_of(body: bytes | str | memoryview) -> list[dict]:
    """The SERP objects of a retrieve-by-ids response, or of one callback delivery, decoded
    leniently (``core.jsondecode``); raises ``Undecodable``."""
    document, _ = decode(body.encode() if isinstance(body, str) else body)
    if type(document) is dict and type(document.get("data")) is list:
        return [s for s in document["data"] if type(s) is dict and isinstance(s.get("id"), str)]
    if type(document) is dict and isinstance(document.get("id"), str):
        return [document]
    return []


def flatten_raw_batch(batch: pa.RecordBatch) -> Iterator[dict[str, pa.Table]]:
    """Flatten a batch of the raw ``responses`` table (one SERP object per body), in one
    piece."""
    serps = []
    for body in batch.column("body").to_pylist():
        try:
            serps.extend(serps_of(body))
        except Undecodable:
            continue  # kept in the raw layer, in its terminal state
    yield flatten_serps(serps)
