"""params.yaml: typed, frozen, validated; errors name the key and the allowed values."""
import copy
import pydantic
import pytest
import yaml

from rnngan.config import Params, ParamsError, load_params, parse_params

from conftest import PROJECT


@pytest.fixture
def raw():
    return yaml.safe_load((PROJECT / "params.yaml").read_text())


def test_committed_params_are_valid_and_match_the_documented_defaults(raw):
    p = parse_params(raw)
    assert p.data.dataset == "synthfaces" and p.model.cell == "lstm"
    assert p.model.variants == ["rnn", "lstm", "gru", "sru", "dcgan"]
    # the dataclass defaults are the committed values: one source of truth for both
    assert p == Params()


def test_params_are_frozen(raw):
    p = parse_params(raw)
    with pytest.raises(pydantic.ValidationError, match="frozen"):
        p.model.cell = "gru"


def test_params_yaml_uses_block_style_lists():
    text = (PROJECT / "params.yaml").read_text()
    import re

    assert re.search(r"variants:[^\n]*\n    - rnn\n", text)
    assert not re.search(r":\s*\[", text), "no flow-style lists"


@pytest.mark.parametrize("path, value, message", [
    ("model.cell", "transformer", "model.cell='transformer' must be one of: rnn, lstm, gru, sru"),
    ("model.hidden", -4, "model.hidden=-4 must be > 0"),
    ("data.image_size", 48, "data.image_size=48 must be one of: 8, 16, 32, 64, 128, 256"),
    ("train.batch_size", 0, "train.batch_size=0 must be > 0"),
    ("train.steps", "many", "train.steps: expected int, got 'many'"),
    ("model.variants", ["rnn", "lstm", "lstm"], "model.variants="),
    ("metrics.features", "inception3", "metrics.features='inception3' must be one of: randinit, pixels"),
    ("data.dataset", "imagenet", "data.dataset='imagenet' must be one of: synthfaces"),
    ("augment.flip", 1.5, "augment.flip=1.5 must be between 0 and 1"),
])
def test_bad_values_name_the_key_and_allowed_values(raw, path, value, message):
    section, key = path.split(".")
    raw[section][key] = value
    with pytest.raises(ParamsError) as err:
        parse_params(raw)
    assert message in str(err.value)


def test_unknown_key_is_an_error_naming_it(raw):
    raw["model"]["hiden"] = 64
    with pytest.raises(ParamsError, match="unknown key 'model.hiden'; allowed keys here: cell, variants, hidden"):
        parse_params(raw)


def test_unknown_section_is_an_error(raw):
    raw["optimizer"] = {"lr": 1}
    with pytest.raises(ParamsError, match="unknown key 'optimizer'"):
        parse_params(raw)


def test_cell_must_be_one_of_the_variants(raw):
    raw["model"]["variants"] = ["rnn", "gru"]
    with pytest.raises(ParamsError, match=r"model.cell='lstm' is not in model.variants \['rnn', 'gru'\]"):
        parse_params(raw)


def test_missing_keys_take_defaults_and_floats_accept_ints(raw):
    del raw["train"]["ema_images"]
    raw["train"]["lr"] = 1
    p = parse_params(raw)
    assert p.train.ema_images == 10000 and p.train.lr == 1.0 and isinstance(p.train.lr, float)


def test_the_old_ema_decay_key_is_refused_with_the_keys_that_replace_it(raw):
    raw["train"]["ema"] = 0.999
    with pytest.raises(ParamsError, match="unknown key 'train.ema'; allowed keys here: .*ema_images, ema_rampup"):
        parse_params(raw)
    del raw["train"]["ema"]
    raw["train"]["ema_rampup"] = 0
    with pytest.raises(ParamsError, match=r"train.ema_rampup=0 must be > 0 and <= 1, or null"):
        parse_params(raw)


def test_load_params_reports_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ParamsError, match="no such params file"):
        load_params(tmp_path / "nope.yaml")
    bad = tmp_path / "params.yaml"
    bad.write_text("model: [unclosed\n")
    with pytest.raises(ParamsError, match="not valid YAML"):
        load_params(bad)


def test_every_stage_refuses_bad_params_before_work_and_writes_nothing(tmp_path, raw):
    """A stage run with model.cell=transformer exits non-zero, names the key, creates no output."""
    import subprocess
    import sys

    bad = copy.deepcopy(raw)
    bad["model"]["cell"] = "transformer"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(bad))
    out = tmp_path / "raw"
    r = subprocess.run([sys.executable, "-m", "stages.download", "--params",
                        str(tmp_path / "params.yaml"), "--out", str(out), "--cache", str(tmp_path / "dl")],
                       capture_output=True, text=True, cwd=PROJECT)
    assert r.returncode == 2
    assert "model.cell='transformer' must be one of: rnn, lstm, gru, sru" in r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"]


def test_types_are_strict_and_floats_take_yaml_exponents(raw):
    """`true` is not a number and 1.5 not a step count; PyYAML's string '2e-4' is the float it spells."""
    for key, value, message in (("lr", True, "train.lr: expected float, got True"),
                                ("steps", 1.5, "train.steps: expected int, got 1.5"),
                                ("lr_d", "fast", "train.lr_d: expected float | None, got 'fast'")):
        bad = copy.deepcopy(raw)
        bad["train"][key] = value
        with pytest.raises(ParamsError) as err:
            parse_params(bad)
        assert str(err.value) == message
    raw["train"]["lr"] = "2e-4"
    assert parse_params(raw).train.lr == 2e-4


def test_a_section_that_is_not_a_mapping_is_named(raw):
    raw["train"] = 5
    with pytest.raises(ParamsError, match="train: expected a mapping of keys, got 5"):
        parse_params(raw)


def test_committed_schema_is_the_code_s_and_validates_params_yaml(raw):
    """params.schema.json is what `rnngan params-schema` prints today, params.yaml points editors
    at it, the committed params.yaml passes it and a bad value fails it as the code does."""
    import json

    import jsonschema

    from rnngan.config import params_schema

    committed = json.loads((PROJECT / "params.schema.json").read_text())
    assert committed == params_schema(), "regenerate: rnngan params-schema --out params.schema.json"
    assert (PROJECT / "params.yaml").read_text().startswith("# yaml-language-server: $schema=params.schema.json\n")
    jsonschema.validate(raw, committed)
    for section, key, value in (("train", "loss", "wgan"), ("model", "hidden", 0), ("model", "hiden", 3),
                                ("augment", "flip", 1.5)):
        bad = copy.deepcopy(raw)
        bad[section][key] = value
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, committed)
        with pytest.raises(ParamsError):
            parse_params(bad)


def test_params_schema_command_prints_and_writes_the_schema(tmp_path):
    import json

    from typer.testing import CliRunner

    from rnngan.cli import app
    from rnngan.config import params_schema

    r = CliRunner().invoke(app, ["params-schema"])
    assert r.exit_code == 0 and json.loads(r.output) == params_schema()
    r = CliRunner().invoke(app, ["params-schema", "--out", str(tmp_path / "s.json")])
    assert r.exit_code == 0 and json.loads((tmp_path / "s.json").read_text()) == params_schema()
