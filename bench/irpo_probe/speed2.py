import time, torch, sys
torch.set_num_threads(int(sys.argv[1]))
from pipeline.models import load_model
m, tok = load_model("bench/irpo_probe/models/M0")
m.eval()
msgs=[{"role":"user","content":"What is 3 + 4?\nEnd your reply with a line of the form \"Final answer: <number>\"."}]
ids = tok.apply_chat_template(msgs, add_generation_prompt=True, return_tensors="pt")
if not torch.is_tensor(ids): ids = ids["input_ids"]
print(ids.shape)
for bs in (1, 8, 32):
    x = ids.repeat(bs, 1)
    t=time.time()
    with torch.inference_mode():
        out = m.generate(x, max_new_tokens=32, do_sample=True, temperature=0.7, top_k=0, top_p=1.0, min_new_tokens=32, pad_token_id=tok.eos_token_id)
    dt=time.time()-t
    print(bs, f"{dt:.2f}s {bs*32/dt:.1f} tok/s", flush=True)
print(repr(tok.decode(out[0, ids.shape[1]:])))
