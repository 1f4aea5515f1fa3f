from pipeline.models import materialize, save_model
m, t, origin = materialize("smollm2-135m-instruct")
print(origin, t.chat_template[:200])
save_model(m, t, "bench/irpo_probe/models/M0", {"name": "M0", "source": origin})
