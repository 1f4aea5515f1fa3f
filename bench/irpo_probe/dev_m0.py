"""On the device machine: rebuild M0 from the split GGUF (carry1 + carry2) into bench/irpo_probe/models/M0."""
import shutil
from pathlib import Path
from pipeline.models import load_gguf, save_model, PLAIN_CHAT_TEMPLATE
d = Path("/tmp/gguf"); d.mkdir(exist_ok=True)
g = d / "SmolLM2-135M-Instruct.Q4_1.gguf"
with g.open("wb") as out:
    for part in ("/tmp/gguf.part1", "bench/irpo_probe/carry2/gguf.part2"):
        with open(part, "rb") as f:
            shutil.copyfileobj(f, out)
m, t = load_gguf(g)
if not getattr(t, "chat_template", None):
    t.chat_template = PLAIN_CHAT_TEMPLATE.read_text()
if t.pad_token is None:
    t.pad_token = t.eos_token
save_model(m, t, "bench/irpo_probe/models/M0", {"name": "M0", "source": "gguf split"})
print("M0 ok", sum(p.numel() for p in m.parameters()))
