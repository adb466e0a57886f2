"""Real-world JSON never loses a result: dirty bodies from the APIs and dirty archive files."""

from __future__ import annotations

import gzip
import json

import httpx
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from serp_etl import catalog
from serp_etl.cli import main
from serp_etl.core.raw import RAW_TABLE
from serp_etl.core.warehouse import Warehouse
from serp_etl.providers.dataforseo import pipeline as dataforseo
from serp_etl.providers.dataforseo.tables import TABLES as DATAFORSEO
from serp_etl.providers.dataforseo.targets import load_targets
from serp_etl.providers.semscraper import pipeline as semscraper
from serp_etl.providers.semscraper.client import Scrape, SemScraperClient
from serp_etl.providers.semscraper.tables import TABLES as SEMSCRAPER
from serp_etl.sandbox.semscraper.app import API_KEY, SemScraperSandbox
from serp_etl.state.ledger import MAX_ATTEMPTS, TaskState
from serp_etl_tests.conftest import EXAMPLE_TARGETS, FIXTURES, TODAY, make_client

DAY = TODAY


class Rewriting(httpx.BaseTransport):
    """The sandbox, with some answers' bytes rewritten on the way."""

    def __init__(self, app, path_part: str, rewrite) -> None:
        self._inner = httpx.WSGITransport(app=app)
        self._part, self._rewrite = path_part, rewrite
        self.rewritten = 0

    def handle_request(self, request):
        response = self._inner.handle_request(request)
        content = response.read()
        if self._part in str(request.url):
            new = self._rewrite(content)
            self.rewritten += new != content
            content = new
        return httpx.Response(response.status_code, headers=response.headers, content=content)


def lone_surrogate(content: bytes) -> bytes:
    """A truncated emoji in the first title of the answer."""
    return content.replace(b'"title":"', b'"title":"\\ud83d ', 1)


def test_a_task_get_body_with_a_lone_surrogate_is_kept_as_received(
    sandbox, ledger, clock, warehouse
):
    targets = load_targets(EXAMPLE_TARGETS)
    with make_client(sandbox, clock) as client:
        dataforseo.submit(client, ledger, DAY, targets)
    clock.now += 60
    dirty = Rewriting(sandbox.app, "task_get", lone_surrogate)
    with make_client(sandbox, clock, transport=dirty) as client:
        report = dataforseo.collect(
            client, ledger, DAY, deadline_seconds=10, poll_seconds=5, clock=clock, sleep=clock.sleep
        )
    assert dirty.rewritten and report.pending == 0 and not report.errors
    DATAFORSEO.publish_responses(ledger, warehouse, DAY)
    raw = pq.read_table(warehouse.partition_dir("dataforseo", RAW_TABLE, DAY)).to_pylist()
    repaired = [r for r in raw if r["repairs"]]
    assert repaired and all(r["repairs"] == ["lone_surrogate"] for r in repaired)
    assert all(b"\\ud83d " in r["body"].encode() for r in repaired)  # the bytes as received
    DATAFORSEO.publish_flattened(warehouse, DAY)
    with catalog.connect(warehouse.data_dir) as con:
        (count,) = con.execute(
            "SELECT count(*) FROM dataforseo_organic WHERE title LIKE '\ufffd %'"
        ).fetchone()
    assert count >= 1


def test_one_serp_with_a_control_character_never_blocks_its_batch_mates(
    tmp_path, clock, ledger, warehouse
):
    sandbox = SemScraperSandbox(tmp_path / "s.sqlite", ready_seconds=20, clock=clock)
    scrapes = [Scrape(f"keyword {n}", "fr", "fr") for n in range(5)]

    def control_character(content: bytes) -> bytes:
        return content.replace(b'"title":"', b'"title":"\x01', 1)

    dirty = Rewriting(sandbox.app, "ids=", control_character)
    with SemScraperClient(
        "http://x.invalid/v1", API_KEY, transport=dirty, clock=clock, sleep=clock.sleep
    ) as client:
        semscraper.submit(client, ledger, DAY, scrapes)
        clock.now += 60
        report = semscraper.collect(
            client, ledger, DAY, deadline_seconds=5, poll_seconds=5, clock=clock, sleep=clock.sleep
        )
    assert dirty.rewritten and report.ended == {"fetched": 5} and report.pending == 0
    SEMSCRAPER.publish_responses(ledger, warehouse, DAY)
    raw = pq.read_table(warehouse.partition_dir("semscraper", RAW_TABLE, DAY)).to_pylist()
    assert sorted(str(r["repairs"]) for r in raw) == ["None"] * 4 + ["['control_character']"]
    (envelope,) = {r["envelope"] for r in raw}  # the answer's own fields are kept
    assert set(json.loads(envelope)) >= {"status", "request_ms", "count"}


def test_an_undecodable_body_is_retried_then_kept_as_undecodable(sandbox, ledger, clock, warehouse):
    targets = load_targets(EXAMPLE_TARGETS)[:1]
    with make_client(sandbox, clock) as client:
        dataforseo.submit(client, ledger, DAY, targets)
    clock.now += 60
    truncated = Rewriting(sandbox.app, "task_get", lambda content: content[:200])
    for run in range(1, MAX_ATTEMPTS + 1):
        with make_client(sandbox, clock, transport=truncated) as client:
            started = clock.now
            report = dataforseo.collect(
                client,
                ledger,
                DAY,
                deadline_seconds=600,
                poll_seconds=60,
                clock=clock,
                sleep=clock.sleep,
            )
        assert clock.now - started < 60  # not one run waited for it until the deadline
        (task,) = ledger.tasks("dataforseo", DAY)
        if run < MAX_ATTEMPTS:
            assert task.state is TaskState.POSTED and task.attempts == run
    assert task.state is TaskState.UNDECODABLE and report.ended == {"undecodable": 1}
    assert "unexpected end of data" in task.status_message
    DATAFORSEO.publish_responses(ledger, warehouse, DAY)
    (row,) = pq.read_table(warehouse.partition_dir("dataforseo", RAW_TABLE, DAY)).to_pylist()
    assert len(row["body"].encode()) == 200 and row["outcome"] == "undecodable"


# -- dirty archive files ----------------------------------------------------------------------

REFERENCE = (FIXTURES / "dataforseo_reference_example.json").read_bytes()


def reference_with_id(n: int) -> bytes:
    return orjson.dumps(orjson.loads(REFERENCE)).replace(
        b"11151921-1535-0066-0000-2c32bed229f2", f"11151921-1535-0066-0000-{n:012x}".encode()
    )


def imported(capsys, data, *files, keep_good=False):
    args = ["--data-dir", str(data), "import", "dataforseo", *map(str, files), "--date", DAY]
    code = main(args + (["--keep-good"] if keep_good else []))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    ("name", "content", "repair"),
    [
        ("bom.json", b"\xef\xbb\xbf" + reference_with_id(1), "bom"),
        (
            "huge.json",
            reference_with_id(2).replace(
                b'"se_results_count":', b'"se_results_count":1e309,"x":', 1
            ),
            "number_out_of_range",
        ),
        (
            "newline.ndjson",
            reference_with_id(3).replace(b'"keyword":', b'"keyword":"a\nb","k":', 1)
            + b"\n"
            + reference_with_id(4),
            "control_character",
        ),
        (
            "control.json.gz",
            gzip.compress(reference_with_id(5).replace(b'"title":"', b'"title":"\x02', 1)),
            "control_character",
        ),
    ],
)
def test_dirty_documents_are_imported_and_their_repairs_named(
    tmp_path, capsys, name, content, repair
):
    path = tmp_path / name
    path.write_bytes(content)
    code, out, err = imported(capsys, tmp_path / "data", path)
    assert code == 0, err
    raw = pq.read_table(tmp_path / "data" / "warehouse" / "dataforseo" / "responses").to_pylist()
    assert any(r["repairs"] and repair in r["repairs"] for r in raw)
    assert all(
        r["body"].encode() in content or gzip.decompress(content).find(r["body"].encode()) >= 0
        for r in raw
    )  # the bytes of the file


def test_keep_good_lands_the_good_documents_and_writes_the_rejects(tmp_path, capsys):
    path = tmp_path / "mixed.ndjson"
    hostile = b'{"status_code": 20000, "tasks": [{"id": "../x", "status_code": 20000}]}'
    path.write_bytes(
        reference_with_id(1)
        + b"\n"
        + hostile
        + b"\n"
        + b"<html>oops</html>\n"
        + reference_with_id(2)
        + b"\n"
    )
    data = tmp_path / "data"
    code, out, err = imported(capsys, data, path)
    assert code == 1 and "line 2" in err and "0 new responses" in out  # the default: all or none
    code, out, err = imported(capsys, data, path, keep_good=True)
    assert code == 1 and "2 new responses" in out and "2 documents rejected" in err
    (rejects,) = (data / "rejects").glob("dataforseo-*.ndjson")
    lines = [json.loads(line) for line in rejects.read_text().splitlines()]
    assert [(r["line"], r["file"]) for r in lines] == [(2, str(path)), (3, str(path))]
    assert "not a DataForSEO task id" in lines[0]["reason"]
    assert "not valid JSON" in lines[1]["reason"] and lines[1]["document"] == "<html>oops</html>"


def test_a_file_of_several_tasks_keeps_each_with_its_envelope(tmp_path, capsys):
    envelope = orjson.loads(REFERENCE)
    task = envelope["tasks"][0]
    envelope["tasks"] = [
        {**task, "id": f"11151921-1535-0066-0000-00000000000{n}"} for n in range(3)
    ]
    envelope["tasks_count"] = 3
    envelope["extra_field_of_the_envelope"] = "kept"
    path = tmp_path / "three.json"
    path.write_bytes(orjson.dumps(envelope, option=orjson.OPT_INDENT_2))
    code, out, _ = imported(capsys, tmp_path / "data", path)
    assert code == 0 and "3 new responses" in out
    raw = pq.read_table(tmp_path / "data" / "warehouse" / "dataforseo" / "responses").to_pylist()
    for row in raw:
        kept = json.loads(row["body"])
        assert [t["id"] for t in kept["tasks"]] == [row["task_id"]]
        assert kept["extra_field_of_the_envelope"] == "kept"
        assert kept["tasks_count"] == 3  # the envelope's fields, as they came


@pytest.mark.parametrize("target", ["/dev/zero", "/dev/null", "."])
def test_import_refuses_what_is_not_a_regular_file(tmp_path, capsys, target):
    code, _, err = imported(capsys, tmp_path / "data", target)
    assert code == 1 and "not a regular file" in err


def test_a_document_over_the_size_cap_is_refused_clearly(tmp_path, capsys):
    path = tmp_path / "big.ndjson"
    path.write_bytes(reference_with_id(1) + b"\n" + b'{"pad": "' + b"x" * (2 * 2**20) + b'"}\n')
    args = [
        "--data-dir",
        str(tmp_path / "data"),
        "import",
        "dataforseo",
        str(path),
        "--date",
        DAY,
        "--max-document-mb",
        "1",
        "--keep-good",
    ]
    assert main(args) == 1
    out, err = capsys.readouterr()
    assert "1 new response in" in out and "1 document rejected" in err
    (rejects,) = (tmp_path / "data" / "rejects").glob("*.ndjson")
    (reject,) = [json.loads(line) for line in rejects.read_text().splitlines()]
    assert reject["line"] == 2 and "over the size cap (1 MB)" in reject["reason"]


def test_a_check_counts_the_repairs_of_the_day(tmp_path, capsys):
    from serp_etl.core.quality import decoding_repairs
    from serp_etl.core.warehouse import Warehouse

    path = tmp_path / "dirty.ndjson"
    path.write_bytes(
        b"\xef\xbb\xbf"
        + reference_with_id(1)
        + b"\n"
        + reference_with_id(2)
        + b"\n"
        + reference_with_id(3).replace(b'"title":"', b'"title":"\x02', 1)
    )
    assert imported(capsys, tmp_path / "data", path)[0] == 0
    result = decoding_repairs(DATAFORSEO, Warehouse(tmp_path / "data"), DAY)
    assert not result.passed and result.metadata == {
        "responses_repaired": 2,
        "repairs": {"bom": 1, "control_character": 1},
    }
    assert decoding_repairs(DATAFORSEO, Warehouse(tmp_path / "none"), DAY).passed


# -- big and hostile inputs -------------------------------------------------------------------


def test_an_answer_over_the_size_cap_is_refused_naming_the_cap(sandbox, ledger, clock):
    from serp_etl.providers.dataforseo.client import DataForSEOClient, DataForSEOError
    from serp_etl.sandbox.dataforseo.app import LOGIN, PASSWORD

    targets = load_targets(EXAMPLE_TARGETS)[:1]
    with make_client(sandbox, clock) as client:
        dataforseo.submit(client, ledger, DAY, targets)
    clock.now += 60
    padded = Rewriting(
        sandbox.app,
        "task_get",
        lambda content: content.replace(b'"Ok."', b'"' + b"x" * 2**21 + b'"'),
    )
    with DataForSEOClient(
        "http://x.invalid",
        LOGIN,
        PASSWORD,
        transport=padded,
        clock=clock,
        sleep=clock.sleep,
        max_response_mb=1,
    ) as small:
        task_id = ledger.tasks("dataforseo", DAY)[0].task_id
        with pytest.raises(DataForSEOError, match="over the size cap of 1 MB"):
            small.task_get(task_id)
        report = dataforseo.collect(
            small, ledger, DAY, deadline_seconds=0, poll_seconds=1, clock=clock, sleep=clock.sleep
        )
    (task,) = ledger.tasks("dataforseo", DAY)
    assert task.state is TaskState.POSTED and report.pending == 1  # not lost: waiting
    assert "size cap" in task.status_message  # and the check says why


def test_temp_files_of_killed_writers_are_swept_at_the_next_write(tmp_path):
    import subprocess
    import sys

    from serp_etl.core.parquet import publish_table

    directory = tmp_path / "table" / "date=2026-01-01"
    directory.mkdir(parents=True)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    dead = directory / f".part-0.parquet.{gone.pid}.deadbeef.tmp"
    live = directory / f".part-0.parquet.{__import__('os').getpid()}.cafebabe.tmp"
    dead.write_bytes(b"half a file")
    live.write_bytes(b"being written")
    publish_table(directory / "part-0.parquet", pa.table({"n": [1]}))
    assert not dead.exists() and live.exists()


def test_the_same_content_twice_in_one_import_is_one_version(tmp_path, capsys):
    path = tmp_path / "twice.ndjson"
    # Far apart, so that two workers take one each.
    lines = [reference_with_id(n) for n in range(1, 200)]
    path.write_bytes(b"\n".join([reference_with_id(0), *lines, reference_with_id(0)]) + b"\n")
    code, out, _ = imported(capsys, tmp_path / "data", path)
    assert code == 0 and "200 new responses" in out
    raw = (
        pq.read_table(
            tmp_path / "data" / "warehouse" / "dataforseo" / "responses", columns=["task_id"]
        )
        .column("task_id")
        .to_pylist()
    )
    assert len(raw) == len(set(raw)) == 200
    serps = (
        pq.read_table(tmp_path / "data" / "warehouse" / "dataforseo" / "serps", columns=["task_id"])
        .column("task_id")
        .to_pylist()
    )
    assert len(serps) == len(set(serps)) == 200


def nested(depth: int) -> object:
    value: object = 1
    for level in range(depth):
        value = [value] if level % 2 else {"k": value}
    return value


def reference_with(field: object, task_id: str) -> dict:
    document = json.loads((FIXTURES / "dataforseo_reference_example.json").read_text())
    document["tasks"][0]["id"] = task_id
    document["tasks"][0]["result"][0]["items"][0]["deep_field"] = field
    return document


def test_values_of_any_depth_are_written_back_as_json_text():
    from serp_etl.core.jsondecode import json_text

    for depth in (3, 300, 5000):
        value = nested(depth)
        text = json_text(value)
        assert text.count("[") + text.count("{") == depth
        if depth < 900:
            assert json.loads(text) == value
    assert (
        json_text({"a": [1, 'x"y', None, True, 1.5, {}], "b": []})
        == '{"a":[1,"x\\"y",null,true,1.5,{}],"b":[]}'
    )


def test_a_document_nested_too_deeply_for_any_reader_is_undecodable():
    from serp_etl.core.jsondecode import Undecodable, decode

    with pytest.raises(Undecodable, match="nested deeper"):
        decode(("[" * 3000 + "]" * 3000).encode())


def test_deeply_nested_documents_land_or_are_rejected_alone(tmp_path, capsys):
    data = tmp_path / "data"
    deep, deeper, good = (tmp_path / f"{name}.json" for name in ("deep", "deeper", "good"))
    deep.write_text(json.dumps(reference_with(nested(300), "11151921-1535-0066-0000-2c32bed229f3")))
    deeper.write_text("[" * 3000 + "]" * 3000)
    good.write_text((FIXTURES / "dataforseo_reference_example.json").read_text())
    # 300 levels: it lands, its deep value kept as JSON text.
    assert (
        main(
            [
                "--data-dir",
                str(data),
                "import",
                "dataforseo",
                str(deep),
                str(good),
                "--date",
                "2026-03-01",
            ]
        )
        == 0
    )
    with catalog.connect(data) as connection:
        assert connection.execute("SELECT count(*) FROM dataforseo_serps").fetchone()[0] == 2
        (extra,) = connection.execute(
            "SELECT extra FROM dataforseo_images WHERE task_id ="
            " '11151921-1535-0066-0000-2c32bed229f3'"
        ).fetchone()
    assert json.loads(extra)["deep_field"] == nested(300)
    # 3000 levels: rejected alone; the good file beside it lands.
    capsys.readouterr()
    assert (
        main(
            [
                "--data-dir",
                str(data),
                "import",
                "dataforseo",
                str(deeper),
                str(good),
                "--date",
                "2026-03-02",
                "--keep-good",
            ]
        )
        == 1
    )  # 1: something was rejected
    assert "1 document rejected" in capsys.readouterr().err
    with catalog.connect(data) as connection:
        assert (
            connection.execute(
                "SELECT count(*) FROM dataforseo_serps WHERE date = DATE '2026-03-02'"
            ).fetchone()[0]
            == 1
        )


@pytest.mark.parametrize("result", [[None], [], None])
def test_a_success_without_a_serp_is_named_not_stored_as_a_success(tmp_path, capsys, result):
    document = json.loads(REFERENCE)
    document["tasks"][0]["result"] = result
    path = tmp_path / "no-serp.json"
    path.write_text(json.dumps(document))
    data = tmp_path / "data"
    assert main(["--data-dir", str(data), "import", "dataforseo", str(path), "--date", DAY]) == 0
    (row,) = pq.read_table(Warehouse(data).partition_dir("dataforseo", RAW_TABLE, DAY)).to_pylist()
    assert row["outcome"] == "unknown"
    assert "the result holds no SERP" in row["status_message"]
    assert row["status_message"].startswith("Ok.")  # what the provider said, kept


def test_a_task_get_success_without_a_serp_is_an_attempt_not_a_fetch(sandbox, ledger, clock):
    targets = load_targets(EXAMPLE_TARGETS)[:1]
    with make_client(sandbox, clock) as client:
        dataforseo.submit(client, ledger, DAY, targets)
    clock.now += 60

    def no_serp(content: bytes) -> bytes:
        envelope = json.loads(content)
        envelope["tasks"][0]["result"] = [None]
        return json.dumps(envelope).encode()

    with make_client(
        sandbox, clock, transport=Rewriting(sandbox.app, "task_get", no_serp)
    ) as client:
        dataforseo.collect(
            client,
            ledger,
            DAY,
            deadline_seconds=600,
            poll_seconds=60,
            clock=clock,
            sleep=clock.sleep,
        )
    (task,) = ledger.tasks("dataforseo", DAY)
    assert task.state is TaskState.POSTED and task.attempts == 1
    assert "the result holds no SERP: [null]" in task.status_message
