"""An import onto a full disk stops in one line, leaves no half file, and never hangs."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from serp_etl_tests.conftest import FIXTURES

REFERENCE = (FIXTURES / "dataforseo_reference_example.json").read_text()


@pytest.fixture
def tiny_disk(tmp_path):
    """A 3 MB tmpfs (the state fits, the parts do not): mounting one needs root, as CI has."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    made = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)


@pytest.mark.slow
def test_an_import_onto_a_full_disk_fails_in_one_line(tmp_path, tiny_disk):
    # Each with text of its own (random: it does not compress), so the parts outgrow the disk.
    lines = [
        REFERENCE.replace("2c32bed229f2", f"{n:012x}")
        .replace("\n", " ")
        .replace('"type": "organic"', f'"type": "organic", "noise": "{os.urandom(2000).hex()}"')
        for n in range(3000)
    ]
    archive = tmp_path / "answers.ndjson"  # about 20 MB of answers for a 3 MB disk
    archive.write_text("\n".join(lines) + "\n")
    data = tiny_disk / "data"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "serp_etl.cli",
            "--data-dir",
            str(data),
            "import",
            "dataforseo",
            str(archive),
            "--date",
            "2026-03-01",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 1
    (line,) = done.stderr.strip().splitlines()[-1:]
    assert "Traceback" not in done.stderr
    assert line.startswith("import failed: ")
    # Whichever fills it first: a Parquet part (the OS's words) or the state (SQLite's).
    assert "No space left on device" in line or "database or disk is full" in line
    assert f"the data dir {data} is on a disk with" in line
    assert not [p for p in (data / "warehouse").rglob(".*.tmp")]  # nothing half written
