"""transformers ``generate`` backend: batched, left-padded, sorted by length, seeded per call."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from tqdm.auto import tqdm
from transformers import LogitsProcessorList, StoppingCriteria, StoppingCriteriaList

from pipeline.engines.base import (
    Completion,
    Conversation,
    Engine,
    SamplingSettings,
    common_prefix_length,
    truncate_at_stop,
)
from pipeline.engines.grouped_attention import use_grouped_attention
from pipeline.engines.nucleus import NucleusSampler


class StopInGenerated(StoppingCriteria):
    """Stop a row once one of ``stops`` appears in its generated text.

    transformers' ``stop_strings`` match the end of prompt + generated text, so a stop string that begins
    inside the prompt (``"\\n\\n"`` after a prompt ending in ``"\\n"``) stops generation after one token, and
    the generated text then holds no stop string. vLLM, like this, looks at generated text only.
    """

    def __init__(self, tokenizer: Any, stops: Sequence[str], prompt_width: int) -> None:
        self.tokenizer, self.stops, self.width = tokenizer, tuple(stops), prompt_width
        # A stop of L characters spans at most 4L byte-level tokens (plus a partial one at each end).
        self.window = 4 * max(len(s) for s in self.stops) + 2

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        tails = input_ids[:, self.width:][:, -self.window:].tolist()
        texts = self.tokenizer.batch_decode(tails, skip_special_tokens=True)
        return torch.tensor([any(s in t for s in self.stops) for t in texts], dtype=torch.bool,
                            device=input_ids.device)


class HFEngine(Engine):
    """``precision`` ({dtype, policy, reason}, :mod:`pipeline.cpu_dtype`): the dtype the model computes in and
    why, for the stage metrics."""

    backend = "hf"

    def __init__(self, model_path: str, *, batch_size: int = 32, dtype: str = "auto", model: Any = None,
                 tokenizer: Any = None, trust_remote_code: bool = False, share_prefill: bool = True,
                 max_model_len: int | None = None) -> None:
        if model is None or tokenizer is None:
            from pipeline import cpu_dtype
            from pipeline.models import load_model

            # auto: bfloat16 on a GPU or a CPU with native bfloat16, float32 elsewhere (logged, and reported)
            choice = cpu_dtype.choose(dtype, "generation", cuda_bf16=True)
            model, tokenizer = load_model(model_path, choice.dtype, trust_remote_code)
            self.precision = choice.record()
        else:
            self.precision = {"dtype": str(model.dtype).replace("torch.", ""), "policy": "user",
                              "reason": "a loaded model was passed in"}
        super().__init__(model_path, tokenizer)
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.model = model.to(self.device).eval()
        # on a CPU, grouped key/value heads attend without copying the cache per query head (41% of decode time)
        self.grouped_attention = self.device.type == "cpu" and use_grouped_attention(self.model)
        # on a CPU, the key/value cache grows in blocks instead of one torch.cat per step (growing_cache.py)
        self.growing_cache = self.device.type == "cpu"
        # on a CPU, top-p sampling without sorting the vocabulary (nucleus.py): the sort and draw were 40% of a step
        self.fast_sampling = self.device.type == "cpu"
        self.batch_size = batch_size
        self.max_model_len = max_model_len  # prompt + completion, as vLLM's: a longer prompt is an error
        self.share_prefill = share_prefill  # n samples of a prompt share one prefill (bench/judge_prefix.py)
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        self._eos_ids = self._stop_token_ids()

    def _stop_token_ids(self) -> set[int]:
        ids = {self.tokenizer.eos_token_id}
        gen_eos = getattr(self.model.generation_config, "eos_token_id", None)
        if isinstance(gen_eos, int):
            ids.add(gen_eos)
        elif isinstance(gen_eos, list):
            ids.update(gen_eos)
        return {i for i in ids if i is not None}

    @torch.inference_mode()
    def generate(self, conversations: Sequence[Conversation], settings: SamplingSettings,
                 desc: str = "generate") -> list[list[Completion]]:
        prompts = [self.encode(self.format_chat(c)) for c in conversations]
        order = sorted(range(len(prompts)), key=lambda i: (-len(prompts[i]), i))  # longest first: OOM shows early
        if self.max_model_len is not None and prompts and len(prompts[order[0]]) >= self.max_model_len:
            from pipeline.errors import StageError

            raise StageError(f"engine.max_model_len: {self.max_model_len} — a prompt has {len(prompts[order[0]])} "
                             f"tokens ({desc}), which leaves no room for a completion; raise it")
        per_batch = max(1, self.batch_size // settings.n)
        results: list[list[Completion]] = [[] for _ in prompts]
        torch.manual_seed(settings.seed)
        pad = self.tokenizer.pad_token_id
        bar = tqdm(total=len(prompts) * settings.n, desc=desc, unit="seq", leave=False)
        for start in range(0, len(order), per_batch):
            idx = order[start:start + per_batch]
            width = max(len(prompts[i]) for i in idx)
            input_ids = torch.full((len(idx), width), pad, dtype=torch.long)
            attention = torch.zeros((len(idx), width), dtype=torch.long)
            for row, i in enumerate(idx):  # left padding
                input_ids[row, width - len(prompts[i]):] = torch.tensor(prompts[i])
                attention[row, width - len(prompts[i]):] = 1
            sample = settings.temperature > 0
            room = settings.max_new_tokens if self.max_model_len is None else self.max_model_len - width
            kwargs: dict[str, Any] = {
                "max_new_tokens": min(settings.max_new_tokens, room),  # a completion stops at the context's end
                "do_sample": sample, "pad_token_id": pad, "eos_token_id": sorted(self._eos_ids),
                "return_dict_in_generate": True, "output_logits": settings.logprobs,
            }
            if sample and self.fast_sampling:  # greedy over scores whose maximum is the drawn token
                kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None,
                              logits_processor=LogitsProcessorList([NucleusSampler(settings.temperature,
                                                                                   settings.top_p)]))
            elif sample:
                kwargs.update(temperature=settings.temperature, top_p=settings.top_p, top_k=0)
            else:
                kwargs.update(temperature=None, top_p=None, top_k=None)
            if settings.stop:
                kwargs["stopping_criteria"] = StoppingCriteriaList([StopInGenerated(self.tokenizer, settings.stop, width)])
            out = self._generate_shared_prefill(input_ids.to(self.device), attention.to(self.device), settings.n,
                                                kwargs)
            new = out.sequences[:, width:].cpu()
            ended = [self._end_of_sequence(row) for row in new.tolist()]  # (kept length, finish reason)
            forced = (self._forced_choices(out, attention.to(self.device), [e[0] for e in ended], settings)
                      if settings.force_choice else None)
            eos_after = self._eos_after_length(out, attention.to(self.device), ended) if settings.logprobs else None
            logps = eos_logps = None
            if settings.logprobs:
                logits = torch.stack(out.logits, dim=1).float()  # raw: before temperature / top-p
                log_softmax = torch.log_softmax(logits, dim=-1)
                logps = log_softmax.gather(-1, new.to(logits.device).unsqueeze(-1)).squeeze(-1).cpu()
                # log p(tokenizer's EOS) at every step: the token TRL appends, whichever EOS id ended the row
                eos = self.tokenizer.eos_token_id
                eos_logps = None if eos is None else log_softmax[..., eos].cpu()
            for row in range(new.shape[0]):
                i = idx[row // settings.n]
                ids = new[row].tolist()
                length, finish = ended[row]
                kept = ids[:length]
                text = self.tokenizer.decode(kept, skip_special_tokens=True)
                text, stop_string = truncate_at_stop(text, settings.stop)
                if stop_string is not None:
                    finish = "stop"
                results[i].append(Completion(
                    text=text, num_tokens=length, finish_reason=finish, num_prompt_tokens=len(prompts[i]),
                    stop_string=stop_string, token_ids=kept,
                    logprobs=logps[row, :length].tolist() if logps is not None else None,
                    stop_logprob=(float(eos_logps[row, length]) if length < len(ids) else eos_after[row])
                    if eos_logps is not None and eos_after is not None else None,
                    choice_logprobs=forced[row] if forced is not None and stop_string is None else None))
            bar.update(new.shape[0])
        bar.close()
        return results

    def _end_of_sequence(self, ids: list[int]) -> tuple[int, str]:
        """Tokens kept before the first end-of-sequence id, and the finish reason."""
        for pos, tok in enumerate(ids):
            if tok in self._eos_ids:
                return pos, "stop"
        return len(ids), "length"

    def _choice_tokens(self, suffix: str, options: Sequence[str]) -> tuple[list[int], list[int]] | None:
        """Token ids of ``suffix`` and the one token of each option after it (None if an option is longer).

        The suffix and an option are tokenized together, as in :meth:`choice_logprobs`: the suffix ids are
        what all options share, and each option must add exactly one token.
        """
        fulls = [self.encode(suffix + opt) for opt in options]
        common = min(common_prefix_length(fulls[0], f) for f in fulls)
        if any(len(f) != common + 1 for f in fulls) or common == 0:
            return None
        return fulls[0][:common], [f[common] for f in fulls]

    def _forced_choices(self, out: Any, prompt_mask: torch.Tensor, lengths: list[int], settings: SamplingSettings
                        ) -> list[list[float]] | None:
        """Option log-probs after each generated sequence + the force_choice suffix, from generate's KV cache."""
        assert settings.force_choice is not None
        suffix, options = settings.force_choice
        tokens = self._choice_tokens(suffix, options)
        if tokens is None:
            return None
        suffix_ids, option_ids = tokens
        logps = self._logprobs_after(out, prompt_mask, lengths, suffix_ids)
        return None if logps is None else [[float(logps[r, t]) for t in option_ids] for r in range(logps.shape[0])]

    def _eos_after_length(self, out: Any, prompt_mask: torch.Tensor, ended: list[tuple[int, str]]
                          ) -> list[float | None]:
        """log p(EOS) right after each completion cut at max_new_tokens (None for the others): the token TRL
        appends to every completion, so DPO can reuse these sides' reference log-probs too."""
        none: list[float | None] = [None] * len(ended)
        eos = self.tokenizer.eos_token_id
        if eos is None or not any(f == "length" for _, f in ended):
            return none
        logps = self._logprobs_after(out, prompt_mask, [n for n, _ in ended], [])
        if logps is None:
            return none
        return [float(logps[r, eos]) if f == "length" else None for r, (_, f) in enumerate(ended)]

    def _logprobs_after(self, out: Any, prompt_mask: torch.Tensor, lengths: list[int], suffix_ids: list[int]
                        ) -> torch.Tensor | None:
        """Next-token log-probs after each row's completion (its first ``lengths[r]`` generated tokens) and
        ``suffix_ids``, continuing from generate's own KV cache; None where the cache is not available.

        The cache holds the prompt and every generated token but the last. One forward pass feeds, per row,
        that last token (masked when the row had already ended) and the suffix; tokens after a row's end of
        sequence are masked, and positions continue from the row's own length. This replaces a second
        prefill of prompt + completion. The cache is cropped back afterwards, so it can be continued again.
        """
        cache = getattr(out, "past_key_values", None)
        if cache is None:
            return None
        seqs = out.sequences
        rows, width = seqs.shape[0], prompt_mask.shape[1]
        gen = seqs[:, width:]
        steps = gen.shape[1]
        if steps == 0 or cache.get_seq_length() != width + steps - 1:
            return None
        n = rows // prompt_mask.shape[0]
        mask_prompt = prompt_mask.repeat_interleave(n, dim=0)
        length_t = torch.tensor(lengths, device=seqs.device)
        cols = torch.arange(steps, device=seqs.device)
        gen_mask = (cols.unsqueeze(0) < length_t.unsqueeze(1)).long()  # generated tokens kept, per row
        suffix = torch.tensor([suffix_ids], dtype=torch.long, device=seqs.device).expand(rows, -1)
        feed = torch.cat([gen[:, -1:], suffix], dim=1)
        mask = torch.cat([mask_prompt, gen_mask, torch.ones((rows, len(suffix_ids)), dtype=torch.long,
                                                             device=seqs.device)], dim=1)
        start = mask_prompt.sum(-1) + length_t  # position of the first suffix token in each row
        suffix_pos = start.unsqueeze(1) + torch.arange(len(suffix_ids), device=seqs.device).unsqueeze(0)
        positions = torch.cat([(start - 1).clamp(min=0).unsqueeze(1), suffix_pos], dim=1)
        logits = self.model(input_ids=feed, attention_mask=mask, position_ids=positions, past_key_values=cache,
                            use_cache=True, logits_to_keep=1).logits
        cache.crop(-feed.shape[1])  # back to prompt + generated tokens but the last
        return torch.log_softmax(logits[:, -1].float(), dim=-1).cpu()

    def _generate_shared_prefill(self, input_ids: torch.Tensor, attention: torch.Tensor, n: int,
                                 kwargs: dict[str, Any]) -> Any:
        """Generate ``n`` continuations per row, computing each prompt's prefill once.

        ``generate(num_return_sequences=n)`` copies the prompt n times before the forward pass, so the prompt
        (the long part of a judge request) is processed n times. Here the prompt minus its last token is run
        once, its KV cache repeated n times, and ``generate`` continues from it.
        """
        cache = self._new_cache()
        if n == 1 or input_ids.shape[1] < 2 or not self.share_prefill:
            return self.model.generate(input_ids=input_ids, attention_mask=attention, num_return_sequences=n,
                                       past_key_values=cache, **kwargs)
        head, head_mask = input_ids[:, :-1], attention[:, :-1]
        self.model(input_ids=head, attention_mask=head_mask, position_ids=(head_mask.cumsum(-1) - 1).clamp(min=0),
                   past_key_values=cache, use_cache=True, logits_to_keep=1)
        cache.batch_repeat_interleave(n)
        return self.model.generate(input_ids=input_ids.repeat_interleave(n, dim=0),
                                   attention_mask=attention.repeat_interleave(n, dim=0), past_key_values=cache,
                                   **kwargs)

    def _new_cache(self) -> Any:
        """An empty key/value cache for one generate call: blocks on a CPU, transformers' default elsewhere."""
        if self.growing_cache:
            from pipeline.engines.growing_cache import growing_cache

            return growing_cache(self.model.config)
        from transformers import DynamicCache

        return DynamicCache(config=self.model.config)

    @torch.inference_mode()
    def _score_sequences(self, sequences: list[tuple[list[int], int]]) -> list[float]:
        out: list[float] = [0.0] * len(sequences)
        order = sorted(range(len(sequences)), key=lambda i: -len(sequences[i][0]))
        per_batch = max(1, self.batch_size // 2)
        pad = self.tokenizer.pad_token_id
        for start in range(0, len(order), per_batch):
            idx = order[start:start + per_batch]
            width = max(len(sequences[i][0]) for i in idx)
            ids = torch.full((len(idx), width), pad, dtype=torch.long)
            mask = torch.zeros((len(idx), width), dtype=torch.long)
            for row, i in enumerate(idx):  # right padding: positions stay aligned with the tokens
                seq = sequences[i][0]
                ids[row, :len(seq)] = torch.tensor(seq)
                mask[row, :len(seq)] = 1
            logits = self.model(input_ids=ids.to(self.device), attention_mask=mask.to(self.device)).logits.float()
            logps = torch.log_softmax(logits, dim=-1).cpu()
            for row, i in enumerate(idx):
                seq, begin = sequences[i]
                positions = torch.arange(begin, len(seq))
                out[i] = float(logps[row, positions - 1, torch.tensor(seq[begin:])].sum())
        return out

    @torch.inference_mode()
    def _next_token_logprobs(self, prefixes: list[list[int]], tokens: list[list[int]]) -> list[list[float]]:
        out: list[list[float]] = [[] for _ in prefixes]
        order = sorted(range(len(prefixes)), key=lambda i: -len(prefixes[i]))
        per_batch = max(1, self.batch_size // 2)
        pad = self.tokenizer.pad_token_id
        for start in range(0, len(order), per_batch):
            idx = order[start:start + per_batch]
            width = max(len(prefixes[i]) for i in idx)
            ids = torch.full((len(idx), width), pad, dtype=torch.long)
            mask = torch.zeros((len(idx), width), dtype=torch.long)
            for row, i in enumerate(idx):  # left padding: every row's last real token is the last column
                ids[row, width - len(prefixes[i]):] = torch.tensor(prefixes[i])
                mask[row, width - len(prefixes[i]):] = 1
            positions = (mask.cumsum(-1) - 1).clamp(min=0)
            logits = self.model(input_ids=ids.to(self.device), attention_mask=mask.to(self.device),
                                position_ids=positions.to(self.device), logits_to_keep=1).logits
            logps = torch.log_softmax(logits[:, -1].float(), dim=-1).cpu()
            for row, i in enumerate(idx):
                out[i] = [float(logps[row, tok]) for tok in tokens[i]]
        return out

