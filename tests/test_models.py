"""Model sources, saving, and the real embedded model."""

import hashlib
import json

import pytest

from pipeline import models
from pipeline.engines.base import SamplingSettings


def test_unknown_source_fails_fast_with_a_clear_message(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(models.ModelSourceError) as e:
        models.materialize("nobody/no-such-model-xyz")
    msg = str(e.value)
    assert msg.startswith("model.source: 'nobody/no-such-model-xyz' — could not load it as a hub id")
    assert "smollm2-135m-instruct" in msg


def test_saved_model_has_card_and_loads(tiny_model_dir):
    card = json.loads((tiny_model_dir / "model_card.json").read_text())
    # the card's hash is the sha256 of the saved weights' bytes, computed here without the code under test
    assert card["weights_sha256"] == hashlib.sha256((tiny_model_dir / "model.safetensors").read_bytes()).hexdigest()
    assert card["parameters"] > 0 and card["dtype"] == "float32"
    assert (tiny_model_dir / "model.safetensors").exists() and not list(tiny_model_dir.glob("*.bin"))
    model, tok = models.load_model(tiny_model_dir)
    assert tok.chat_template


def test_weights_hash_is_sha256_of_the_weight_files(tmp_path):
    one = tmp_path / "one"
    one.mkdir()
    (one / "model.safetensors").write_bytes(b"abc")
    (one / "config.json").write_text("{}")  # not weights: not hashed
    # the FIPS 180-2 test vector: sha256("abc")
    assert models.weights_sha256(one) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    (one / "model.safetensors").write_bytes(b"abd")
    assert models.weights_sha256(one) == hashlib.sha256(b"abd").hexdigest()
    two = tmp_path / "two"  # sharded: each file's name and hex digest, in name order, hashed together
    two.mkdir()
    (two / "model-00002-of-00002.safetensors").write_bytes(b"second")
    (two / "model-00001-of-00002.safetensors").write_bytes(b"first")
    expected = hashlib.sha256(b"model-00001-of-00002.safetensors" + hashlib.sha256(b"first").hexdigest().encode()
                              + b"model-00002-of-00002.safetensors" + hashlib.sha256(b"second").hexdigest().encode())
    assert models.weights_sha256(two) == expected.hexdigest()


def test_missing_model_dir(tmp_path):
    with pytest.raises(models.ModelSourceError, match="not a model directory"):
        models.load_model(tmp_path / "M9")


@pytest.mark.slow
def test_real_m0_is_plain_and_coherent(real_m0):
    from pipeline.engines.hf import HFEngine

    card = json.loads((real_m0 / "model_card.json").read_text())
    assert card["parameters"] == 134515008 and card["source"] == "smollm2-135m-instruct"
    config = json.loads((real_m0 / "config.json").read_text())
    assert "quantization_config" not in config
    engine = HFEngine(str(real_m0), batch_size=4)
    assert engine.format_chat([{"role": "user", "content": "hi"}]).endswith("<|im_start|>assistant\n")
    out = engine.generate([[{"role": "user", "content": "What is the capital of France? Answer in one sentence."}]],
                          SamplingSettings(n=1, temperature=0.0, max_new_tokens=24))
    assert "Paris" in out[0][0].text
