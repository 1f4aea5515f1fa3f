import time, sys, torch
torch.set_num_threads(1)
from pipeline.engines.hf import HFEngine
from pipeline.engines.base import SamplingSettings
from pipeline.tasks import train_and_heldout
from pipeline.verifiable import extract_answer, numeric
bs = int(sys.argv[1]); mnt = int(sys.argv[2])
eng = HFEngine("bench/irpo_probe/models/M0", batch_size=bs)
tr, ho = train_and_heldout("arithmetic", 16, 16, 0, {"digits": 1})
convs = [[{"role": "user", "content": t.prompt}] for t in tr]
t0 = time.time()
out = eng.generate(convs, SamplingSettings(n=4, temperature=0.7, top_p=1.0, max_new_tokens=mnt, seed=0))
dt = time.time() - t0
toks = sum(c.num_tokens for o in out for c in o)
print(f"bs={bs} mnt={mnt} {dt:.1f}s seqs={sum(len(o) for o in out)} tokens={toks} tok/s={toks/dt:.0f} seq/s={64/dt:.2f}")
for o, t in zip(out[:3], tr):
    for c in o[:2]:
        e = extract_answer(c.text); print(repr(c.text), c.num_tokens, c.finish_reason, e, t.answer)
