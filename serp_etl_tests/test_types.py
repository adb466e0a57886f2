"""The package type-checks: mypy, configured in pyproject.toml ([tool.mypy]), finds nothing."""

from pathlib import Path

from mypy import api

REPO = Path(__file__).resolve().parent.parent


def test_mypy_finds_no_error(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)  # where pyproject.toml's [tool.mypy] is read from
    report, errors, status = api.run(["--cache-dir", str(tmp_path / "mypy_cache")])
    assert status == 0, report + errors
    assert report.startswith("Success: no issues found")
