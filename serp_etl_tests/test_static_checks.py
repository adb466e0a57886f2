"""The code passes its static checks, as configured in pyproject.toml: mypy ([tool.mypy]) finds
no error, and every file is as `ruff format` writes it and clean for `ruff check`."""

import subprocess
import sys
from pathlib import Path

from mypy import api

REPO = Path(__file__).resolve().parent.parent
CODE = ["serp_etl", "serp_etl_tests", "bench"]


def test_mypy_finds_no_error(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)  # where pyproject.toml's [tool.mypy] is read from
    report, errors, status = api.run(["--cache-dir", str(tmp_path / "mypy_cache")])
    assert status == 0, report + errors
    assert report.startswith("Success: no issues found")


def test_every_file_is_formatted_and_lint_clean():
    for command in (["format", "--check"], ["check"]):
        done = subprocess.run(
            [sys.executable, "-m", "ruff", *command, *CODE],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stdout + done.stderr
