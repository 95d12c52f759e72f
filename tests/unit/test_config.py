import datetime as dt
from pathlib import Path

import pytest
import yaml

from flows.config import ConfigError, load
from flows.demo import seed


@pytest.fixture(scope="module")
def demo_cfg(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return seed(tmp_path_factory.mktemp("demo"), 20, dt.date(2026, 11, 23))


def test_demo_config_loads(demo_cfg: Path) -> None:
    cfg = load(demo_cfg)
    assert cfg.creditor.id == "demo-woonstichting"
    assert cfg.ledger_url() == f"sqlite:///{demo_cfg.parent / 'ledger.sqlite'}"
    assert set(cfg.odbc_sources()) == {"erp"} and set(cfg.sftp_sources()) == {"bank"}


def _broken(demo_cfg: Path, tmp_path: Path, old: str, new: str) -> Path:
    text = demo_cfg.read_text()
    assert old in text
    p = tmp_path / "creditor.yaml"
    p.write_text(text.replace(old, new, 1))
    return p


def test_a_password_in_the_connection_string_is_refused(demo_cfg: Path, tmp_path: Path) -> None:
    p = _broken(
        demo_cfg, tmp_path, 'connection_string: "DRIVER', 'connection_string: "PWD=geheim;DRIVER'
    )
    with pytest.raises(ConfigError) as err:
        load(p)
    assert "sources.erp.odbc.connection_string" in str(err.value)
    assert "put the password in `password:`" in str(err.value)
    assert "geheim" not in str(err.value).split("connection_string:")[0]


def test_unpinned_sftp_is_refused(demo_cfg: Path, tmp_path: Path) -> None:
    p = _broken(demo_cfg, tmp_path, "host_key_fingerprint:", "# host_key_fingerprint:")
    with pytest.raises(ConfigError, match=r"sources.bank.sftp: .*pin the server's host key"):
        load(p)


def test_misspelled_and_missing_fields_name_the_fix(demo_cfg: Path, tmp_path: Path) -> None:
    p = _broken(demo_cfg, tmp_path, "  sector: housing", "  sektor: housing")
    msg = str(pytest.raises(ConfigError, load, p).value)
    assert "creditor.sector: Field required - add this field" in msg
    assert (
        "creditor.sektor: Extra inputs are not permitted - remove it or check its spelling" in msg
    )


def test_bad_partitions_and_yaml_errors(demo_cfg: Path, tmp_path: Path) -> None:
    p = _broken(demo_cfg, tmp_path, "partitions: 4", "partitions: 3")
    assert "policy.partitions: use a power of two" in str(pytest.raises(ConfigError, load, p).value)
    p.write_text("creditor: [unclosed")
    assert "not valid YAML at line 1" in str(pytest.raises(ConfigError, load, p).value)


def test_the_documented_example_creditor_loads() -> None:
    cfg = load(Path(__file__).parents[2] / "deployments" / "creditor.example.yaml")
    assert cfg.debt_help.exchange is not None and cfg.debt_help.exchange.kind == "soap"
    assert cfg.debt_help.wgs.enabled and cfg.policy.allocation_order == [
        "costs",
        "interest",
        "principal",
    ]


def test_debt_help_takes_one_route(demo_cfg: Path, tmp_path: Path) -> None:
    doc = yaml.safe_load(demo_cfg.read_text())
    doc["debt_help"]["inbox_dir"] = "elders"
    bad = tmp_path / "c.yaml"
    bad.write_text(yaml.safe_dump(doc))
    with pytest.raises(ConfigError, match="exchange or inbox_dir, not both"):
        load(bad)


def test_ladders_are_configurable_per_segment_within_the_law(
    demo_cfg: Path, tmp_path: Path
) -> None:
    from flows.context import make_ctx
    from flows.stages import _policy

    doc = yaml.safe_load(demo_cfg.read_text())
    doc["policy"]["ladders"] = {
        "wont_pay": [
            {"step": "friendly_reminder", "channels": ["sms", "email"], "wait_days": 2},
            {"step": "wik_letter", "channels": ["letter"], "wait_days": 10, "costs": True},
        ]
    }
    ok = tmp_path / "ok.yaml"
    ok.write_text(yaml.safe_dump(doc))
    policy = _policy(make_ctx(str(ok)))
    assert [st.name for st in policy.ladders["wont_pay"]] == ["friendly_reminder", "wik_letter"]
    assert policy.ladders["wont_pay"][1].costs and policy.ladders["forgetful"][0].pre_due
    for bad, why in (
        (
            {"step": "friendly_reminder", "channels": ["email"], "costs": True},
            "only the wik_letter",
        ),
        ({"step": "dreigbrief", "channels": ["letter"]}, "no message template for 'dreigbrief'"),
    ):
        doc["policy"]["ladders"] = {"wont_pay": [bad]}
        p = tmp_path / "bad.yaml"
        p.write_text(yaml.safe_dump(doc))
        with pytest.raises(ConfigError, match=why):
            load(p)


def test_preview_renders_a_sample_before_anything_goes_out(demo_cfg: Path) -> None:
    from typer.testing import CliRunner

    from flows.cli import app

    cli = CliRunner()
    letter = cli.invoke(
        app,
        ["preview", "--creditor", str(demo_cfg), "--step", "wik_letter", "--segment", "wont_pay"],
    )
    assert letter.exit_code == 0, letter.output
    assert "binnen veertien dagen vanaf de dag nadat deze brief bij u is bezorgd" in letter.output
    assert "Die kosten zijn € 111,47" in letter.output.replace("\xa0", " ")  # 15% of EUR 743.12
    text = cli.invoke(
        app,
        [
            "preview",
            "--creditor",
            str(demo_cfg),
            "--step",
            "friendly_reminder",
            "--channel",
            "sms",
            "--language",
            "en",
        ],
    )
    assert "Reference 5000056789012345" in text.output
    bad = cli.invoke(app, ["preview", "--creditor", str(demo_cfg), "--step", "dreigbrief"])
    assert bad.exit_code == 2 and "no template for 'dreigbrief'" in bad.output
