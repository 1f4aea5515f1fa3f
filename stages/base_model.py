"""Materialize M0 from ``model.source`` as a plain transformers model.

    python -m stages.base_model            # writes models/M0/

Reads: params.yaml (model). Writes: models/M0/ (safetensors, tokenizer, chat template, model_card.json).
"""

from __future__ import annotations

from pipeline import models
from pipeline.paths import model_dir
from stages import _common


def main() -> None:
    args = _common.parser(__doc__, iteration=False).parse_args()
    params = _common.load(args)
    cfg = params.model
    models.check_source(cfg.source)
    model, tok, origin = models.materialize(cfg.source, cfg.dtype, cfg.trust_remote_code)
    card = models.save_model(model, tok, model_dir("M0"), {"name": "M0", "source": cfg.source, "origin": origin,
                                                           "parent": None})
    _common.log.info("M0: %s parameters, %s, sha256 %s", card["parameters"], card["dtype"], card["weights_sha256"][:12])


if __name__ == "__main__":
    _common.run(main)
