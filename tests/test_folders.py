"""The checks every Hugging Face folder loader shares: one sentence naming the first problem, as the caller's error."""

import pytest

from medviz.folders import check_weights, load_image_classifier, read_config


class Refused(ValueError):
    pass


def test_a_missing_or_malformed_config_is_named_with_what_the_folder_should_be(tmp_path):
    with pytest.raises(Refused, match=r"^mine: no config.json, so this is not a transformers classifier folder$"):
        read_config(tmp_path, "config.json", "transformers classifier", Refused, "mine")
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(Refused, match=r"^mine/config.json: malformed JSON"):
        read_config(tmp_path, "config.json", "transformers classifier", Refused, "mine")
    (tmp_path / "config.json").write_text('{"a": 1}')
    assert read_config(tmp_path, "config.json", "transformers classifier", Refused) == {"a": 1}


def test_missing_and_damaged_weights_are_refused_before_any_library_reads_them(tmp_path):
    with pytest.raises(Refused, match=r"^mine: no weights file \(.safetensors\)$"):
        check_weights(tmp_path, Refused, "mine")
    (tmp_path / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{}")
    with pytest.raises(Refused, match="corrupt safetensors file"):
        check_weights(tmp_path, Refused)


def test_a_folder_transformers_cannot_load_is_one_sentence(tmp_path):
    (tmp_path / "config.json").write_text('{"model_type": "no-such-architecture"}')
    with pytest.raises(Refused, match=r"^mine: cannot load the classifier \("):
        load_image_classifier(tmp_path, "classifier", Refused, "mine")
