"""What a careful user meets first: targets check, --version, a port already in use, the
error that names valid choices."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import socket
import sys
from pathlib import Path

import pytest

from serp_etl import project_files
from serp_etl.cli import main
from serp_etl.providers.semscraper.targets import Scrape, check_locations
from serp_etl.sandbox.semscraper.app import LOCATIONS
from serp_etl_tests.conftest import EXAMPLE_TARGETS

OFFERED = [{"location": loc, "language": lang} for loc, lang, _, _ in LOCATIONS]


def test_targets_check_validates_both_providers_without_a_run(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("SERP_ETL_MODE", raising=False)
    assert main(["--data-dir", str(tmp_path), "targets", "check", str(EXAMPLE_TARGETS)]) == 0
    out = capsys.readouterr().out
    assert "6 dataforseo targets, 3 semscraper targets" in out
    assert "dataforseo: locations and languages checked against" in out
    bad = tmp_path / "targets.toml"
    bad.write_text(
        '[[dataforseo]]\nimage_url = "https://x.example/a.jpg"\n'
        'location_name = "Atlantis"\nlanguage_code = "en"\n'
    )
    assert main(["--data-dir", str(tmp_path), "targets", "check"]) == 2
    assert "location_name 'Atlantis' is not one of DataForSEO's" in capsys.readouterr().err
    assert not (tmp_path / "warehouse").exists()  # nothing run, nothing written


def test_targets_check_reports_every_problem_in_one_pass_naming_each_target(
    tmp_path, capsys, monkeypatch
):
    monkeypatch.delenv("SERP_ETL_MODE", raising=False)
    (tmp_path / "targets.toml").write_text(
        '[[dataforseo]]\nimage_url = "https://x.example/a.jpg"\nlocation_code = 2840\n'
        'language_code = "en"\npriority = 3\n'
        '[[dataforseo]]\nimage_url = "https://x.example/b.jpg"\n'
        'location_name = "Atlantis"\nlanguage_code = "en"\n'
        '[[dataforseo]]\nimage_url = "https://x.example/c.jpg"\nlocation_code = 2840\n'
        'language_code = "en"\n'
        '[[semscraper]]\nkeyword = "tropical wallpaper"\nlocation = "zz"\nlanguage = "fr"\n'
        '[[semscraper]]\nkeyword = "palm leaves"\nlocation = "fr"\nlanguage = "fr"\n'
        "depth = 99\n"
        '[[semscraper]]\nkeyword = "beach towel"\nlocation = "fr"\nlanguage = "fr"\n'
    )
    assert main(["--data-dir", str(tmp_path), "targets", "check"]) == 2
    err = capsys.readouterr().err
    assert "4 problems" in err
    assert "dataforseo target #1 ('https://x.example/a.jpg'): priority must be 1" in err
    # Checked against DataForSEO's list although target #1 has a problem of its own.
    assert (
        "dataforseo target #2 ('https://x.example/b.jpg'): location_name 'Atlantis' is "
        "not one of DataForSEO's"
    ) in err
    assert "semscraper target #1 ('tropical wallpaper'): 'zz' is not a location" in err
    assert "semscraper target #2 ('palm leaves'): depth" in err
    assert "c.jpg" not in err and "beach towel" not in err  # the good ones are not named


def test_a_location_is_checked_once_the_file_reads(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("SERP_ETL_MODE", raising=False)
    (tmp_path / "targets.toml").write_text(
        '[[semscraper]]\nkeyword = "tropical wallpaper"\nlocation = "zz"\nlanguage = "fr"\n'
        '[[semscraper]]\nkeyword = "Beach"\nlocation = "US"\nlanguage = "EN"\n'
    )
    assert main(["--data-dir", str(tmp_path), "targets", "check"]) == 2
    err = capsys.readouterr().err
    assert "2 problems" in err
    assert "semscraper target #1 ('tropical wallpaper'): 'zz' is not a location" in err
    assert "semscraper target #2 ('Beach'): " in err and "codes are lower case" in err


def test_a_location_and_language_error_lists_only_valid_choices():
    with pytest.raises(Exception) as refused:
        check_locations([Scrape("k", "us", "fr")], OFFERED)
    message = str(refused.value)
    offered_at = re.search(r"offered at: ([^;]*);", message).group(1).split(", ")
    assert offered_at == ["be", "ca", "ch", "fr"] and "us" not in offered_at
    assert message.endswith("location 'us' offers: en")


def test_version(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert re.fullmatch(r"serp-etl \d+\.\d+\.\d+\S*\n", capsys.readouterr().out)


def test_a_port_in_use_is_one_line_not_a_traceback(tmp_path, capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["--data-dir", str(tmp_path), "sandbox", "serve", "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"cannot listen on 127.0.0.1:{port}" in err


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (
            '[[semscraper]]\nkeyword = "{big}"\nlocation = "fr"\nlanguage = "fr"\n',
            "keyword has 5000000 characters; at most 700 are accepted",
        ),
        (
            '[[dataforseo]]\nimage_url = "https://x.example/{big}.jpg"\nlocation_code = 2840\n'
            'language_code = "en"\n',
            "image_url has 5000022 characters; at most 2048 are accepted",
        ),
    ],
)
def test_a_huge_keyword_or_url_is_refused_before_it_is_paid_for(tmp_path, capsys, entry, message):
    targets = tmp_path / "targets.toml"
    targets.write_text(entry.replace("{big}", "k" * 5_000_000))
    assert main(["--data-dir", str(tmp_path), "targets", "check", str(targets)]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err) < 500 and len(err.strip().splitlines()) == 1


def test_a_deeply_nested_targets_file_is_one_line(tmp_path, capsys):
    targets = tmp_path / "targets.toml"
    targets.write_text("x = " + "[" * 50_000 + "]" * 50_000 + "\n")
    assert main(["--data-dir", str(tmp_path), "targets", "check", str(targets)]) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [f"{targets}: not a targets file: nested too deeply"]


def test_money_reads_as_money():
    from serp_etl.core.money import money

    assert money(8e-05, "EUR") == "0.00008 EUR"
    assert money(0, "USD") == "0.00 USD" and money(12.5, "USD") == "12.50 USD"
    assert money(0.0054, "USD") == "0.0054 USD" and money(1e-9, "EUR") == "0.00 EUR"
    assert money(None, "EUR") == "unknown EUR"


def test_a_missing_targets_file_is_one_problem_not_one_per_provider(tmp_path, capsys):
    assert main(["--data-dir", str(tmp_path), "targets", "check"]) == 2
    err = capsys.readouterr().err
    assert err.count("no targets file") == 1 and "problems" not in err


def test_init_writes_the_examples_where_missing_and_keeps_what_is_yours(tmp_path, capsys):
    data = tmp_path / "data"
    assert main(["--data-dir", str(data), "init"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"{data / 'targets.toml'}: written from the example",
        f"{data / 'dagster' / 'dagster.yaml'}: written from the example",
    ]
    assert (data / "targets.toml").read_text() == project_files.EXAMPLE_TARGETS.read_text()
    (data / "targets.toml").write_text("# mine\n")
    assert main(["--data-dir", str(data), "init"]) == 0
    assert "targets.toml: kept (it is yours)" in capsys.readouterr().out
    assert (data / "targets.toml").read_text() == "# mine\n"


def test_the_package_ships_what_a_user_needs():
    import tomllib

    root = Path(__file__).resolve().parent.parent
    project = tomllib.loads((root / "pyproject.toml").read_text())
    shipped = project["tool"]["setuptools"]["package-data"]["serp_etl"]
    # Each file the wheel is told to carry exists in the package, and the code reads it there.
    assert all(any((root / "serp_etl").glob(name)) for name in shipped)
    assert {"py.typed", "project/targets.toml", "project/dagster.yaml"} <= set(shipped)
    # The provider instances' defs.yaml (components), which the code location loads.
    assert sorted(p.parent.name for p in (root / "serp_etl").glob("defs/*/defs.yaml")) == [
        "dataforseo",
        "semscraper",
    ]
    assert "defs/*/defs.yaml" in shipped
    assert project["project"]["license"] == "Apache-2.0"
    assert project["project"]["license-files"] == ["LICENSE"]
    assert "Apache License" in (root / "LICENSE").read_text()
    assert {"pandas", "dagster-duckdb"} <= declared_dependencies(project)
    assert undeclared_imports(root / "serp_etl", project) == set()


def declared_dependencies(project: dict, extras: bool = False) -> set[str]:
    wanted = list(project["project"]["dependencies"])
    if extras:
        wanted += [
            d for group in project["project"]["optional-dependencies"].values() for d in group
        ]
    return {re.split(r"[\[<>=! ;]", dependency)[0].lower() for dependency in wanted}


def undeclared_imports(package: Path, project: dict) -> set[str]:
    """The distributions serp_etl's modules import from that pyproject.toml does not declare
    (the dependencies, or an extra's for what only that extra's code imports)."""
    imported = set()
    for module in package.rglob("*.py"):
        for node in ast.walk(ast.parse(module.read_text())):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imported.add(node.module.split(".")[0])
    third_party = imported - set(sys.stdlib_module_names) - {"serp_etl"}
    distributions = importlib.metadata.packages_distributions()
    needed = {dist.lower() for name in third_party for dist in distributions.get(name, [name])}
    return needed - declared_dependencies(project, extras=True)
