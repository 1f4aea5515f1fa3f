"""Model sources, saving, and the real embedded model."""

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
    assert card["weights_sha256"] == models.weights_sha256(tiny_model_dir)
    assert card["parameters"] > 0 and card["dtype"] == "float32"
    assert (tiny_model_dir / "model.safetensors").exists() and not list(tiny_model_dir.glob("*.bin"))
    model, tok = models.load_model(tiny_model_dir)
    assert tok.chat_template


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
