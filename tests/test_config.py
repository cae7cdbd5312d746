"""Configuration: TOML file, flags, defaults and their checks."""

from __future__ import annotations

from pathlib import Path

import pytest
from twisted.python import usage

from mmo.app.tap import SCHEMA as NODE_SCHEMA
from mmo.app.tap import Options
from mmo.config import ConfigError, sample_toml

SAMPLE = Path(__file__).parent.parent / "config" / "mmo.toml"


def parse(*argv: str) -> dict:
    """The checked values of ``argv`` (the typed settings are made from them)."""
    opts = Options()
    opts.parseOptions(list(argv))
    return opts.checked


def test_sample_config_documents_every_key_and_is_current():
    expected = sample_toml(NODE_SCHEMA, "mmo node configuration: every key, at its default.")
    assert SAMPLE.read_text() == expected, (
        "config/mmo.toml is out of date: python -P -m mmo.app.tap > config/mmo.toml")
    values = NODE_SCHEMA.load_file(str(SAMPLE))
    assert set(values) == set(NODE_SCHEMA.keys)


def test_defaults_file_then_flags(tmp_path):
    assert parse()["tick_rate"] == 10.0
    conf = tmp_path / "c.toml"
    conf.write_text('tick_rate = 20\nmax-frame = 4096\nzone = ["a:10x10", {name = "b", width = 5, height = 6}]\n')
    values = parse("--config", str(conf), "--tick-rate", "15")
    assert values["tick_rate"] == 15.0 and values["max_frame"] == 4096
    assert [str(z) for z in values["zone"]] == ["a:10x10", "b:5x6"]
    assert [str(z) for z in parse("--zone", "x:1x2", "--zone", "y:3x4")["zone"]] == ["x:1x2", "y:3x4"]
    assert parse("--no-open-registration")["open_registration"] is False


def test_the_old_name_tick_hz_still_sets_the_configured_rate(tmp_path):
    conf = tmp_path / "old.toml"
    conf.write_text("tick_hz = 20\n")
    assert parse("--config", str(conf))["tick_rate"] == 20.0
    assert parse("--tick-hz", "15")["tick_rate"] == 15.0
    assert parse("--tick-hz", "15", "--tick-rate", "12")["tick_rate"] == 12.0
    opts = Options()
    opts.parseOptions(["--tick-hz", "5"])
    assert opts.settings.node.tick_rate == 5.0 and opts.settings.node.tick_interval == 0.2


@pytest.mark.parametrize("argv, words", [
    (["--tick-rate", "0"], "--tick-rate"),
    (["--tick-hz", "fast"], "--tick-hz"),
    (["--mgroup", "10.0.0.1"], "not a multicast address"),
    (["--iface", "nowhere"], "not an IPv4 address"),
    (["--zone", "bad"], "NAME:WIDTHxHEIGHT"),
    (["--listen", "4000"], "endpoint string"),
    (["--max-frame", "1"], "at least 64"),
])
def test_bad_flags_are_usage_errors(argv, words):
    with pytest.raises(usage.UsageError, match=words):
        parse(*argv)


def test_bad_files(tmp_path):
    for text, words in [("nope = 1\n", "unknown key 'nope'"),
                        ("tick_hz = 'x'\n", "bad value for 'tick_hz'"),
                        ("tick_hz = \n", "not valid TOML"),
                        ("open_registration = 3\n", "true or false")]:
        conf = tmp_path / "c.toml"
        conf.write_text(text)
        with pytest.raises(usage.UsageError, match=words):
            parse("--config", str(conf))
    with pytest.raises(usage.UsageError, match="cannot read config file"):
        parse("--config", str(tmp_path / "missing.toml"))


def test_schema_check_names_the_origin():
    with pytest.raises(ConfigError, match="somewhere: bad value for 'ttl'"):
        NODE_SCHEMA.check("ttl", 300, "somewhere")
