"""Configurations: TOML, overrides, and one-line rejections of unknown keys and impossible values."""

from __future__ import annotations

import pytest

from ncc.training.config import ConfigError, TrainConfig, load_config, parse_value


def write(tmp_path, text: str):
    path = tmp_path / "run.toml"
    path.write_text(text)
    return path


def test_toml_sections_and_overrides(tmp_path):
    path = write(tmp_path, """
epochs = 7
amp = false
[model]
name = "ggnn"
steps = 4
[optimizer]
name = "sgd"
lr = 1
[data]
node_budget = 10000
[task]
name = "loops"
programs = 50
""")
    config = load_config(path, {"optimizer.lr": 0.05, "epochs": None, "model.hidden_size": 16, "task.seed": 3})
    assert config.epochs == 7 and config.amp == "false"
    assert config.model.name == "ggnn" and config.model.kwargs == {"steps": 4, "hidden_size": 16}
    assert config.optimizer.name == "sgd" and config.optimizer.lr == 0.05 and isinstance(config.optimizer.lr, float)
    assert config.data.node_budget == 10000
    assert config.task_options == {"programs": 50, "seed": 3}
    assert TrainConfig.from_dict(config.to_dict()) == config
    unset = load_config(None, {"task": "loops"})
    assert unset.epochs is None and TrainConfig.from_dict(unset.to_dict()) == unset  # the task's own count


@pytest.mark.parametrize("text, message", [
    ("epoch = 3", "run.toml: epoch: unknown key"),
    ("[optimizer]\nlr = -0.1", "run.toml: optimizer.lr: must be > 0.0, got -0.1"),
    ("[optimizer]\nlearning_rate = 0.1", "run.toml: optimizer.learning_rate: unknown key"),
    ("[data]\nbatch_size = 2.5", "run.toml: data.batch_size: expected int, got float 2.5"),
    ("[data]\nbatch_size = 0", "run.toml: data.batch_size: must be >= 1, got 0"),
    ("device = 'tpu'", "run.toml: device: must be auto, cpu, cuda or cuda:N"),
    ("[task]\nname = 'loops'\nprogramz = 3", "run.toml: task.programz: unknown key"),
    ("[task]\nname = 'loops'\nprograms = 3", "run.toml: task.programs: must be >= 10, got 3"),
    ("task = 'nope'", "run.toml: task: unknown task 'nope'"),
    ("[model]\nnum_classes = 3", "run.toml: model.num_classes: is set from the data"),
    ("[data]\nfeatures = 'bytes'", "run.toml: data.features: must be one of auto, text, inst2vec, got 'bytes'"),
    ("epochs = ", "run.toml: not valid TOML"),
])
def test_bad_files_fail_with_one_line_naming_key_and_file(tmp_path, text, message):
    with pytest.raises(ConfigError) as error:
        load_config(write(tmp_path, text))
    text = str(error.value)
    assert text.startswith(str(tmp_path / "run.toml")) and message.replace("run.toml: ", "", 1) in text, text
    assert "\n" not in str(error.value)


def test_bad_override_names_the_command_line():
    with pytest.raises(ConfigError, match=r"^command line: epochs: must be >= 1, got 0$"):
        load_config(None, {"epochs": 0})
    with pytest.raises(ConfigError, match="unknown key"):
        load_config(None, {"nonsense.key": 1})


def test_missing_file_and_parse_value(tmp_path):
    with pytest.raises(ConfigError, match="no such configuration file"):
        load_config(tmp_path / "absent.toml")
    assert parse_value("3") == 3 and parse_value("1e-3") == 0.001 and parse_value("true") is True
    assert parse_value("[2, 2]") == [2, 2] and parse_value("ggnn") == "ggnn"


def test_training_identity_ignores_run_length_and_device():
    a = load_config(None, {"epochs": 3, "device": "cpu"})
    b = load_config(None, {"epochs": 9, "progress": False})
    assert a.training_identity() == b.training_identity()
    assert a.training_identity() != load_config(None, {"seed": 1}).training_identity()


def test_node_features_default_to_the_models_own():
    assert load_config(None, {"model.name": "lstm"}).data.feature_kind("lstm") == "inst2vec"
    assert load_config(None, {}).data.feature_kind("ggnn") == "text"
    assert load_config(None, {"data.features": "inst2vec"}).data.feature_kind("ggnn") == "inst2vec"
    assert load_config(None, {"data.features": "text"}).data.feature_kind("lstm") == "text"
