"""A scripted engine for testing the parsing/forcing logic without a model."""

from pipeline.engines.base import Engine


class FakeTokenizer:
    def apply_chat_template(self, messages, tokenize=False, add_generation_prompt=True, continue_final_message=False):
        return "".join(f"<{m['role']}>{m['content']}" for m in messages) + ("<assistant>" if add_generation_prompt else "")


class FakeEngine(Engine):
    """choice_logprobs returns canned log-probs per option, and records the contexts it was asked about."""

    def __init__(self, option_logprobs):
        super().__init__("fake", FakeTokenizer())
        self.option_logprobs = option_logprobs
        self.contexts = []

    def generate(self, conversations, settings, desc="generate"):
        raise NotImplementedError

    def _score_sequences(self, sequences):
        raise NotImplementedError

    def choice_logprobs(self, contexts, options):
        self.contexts.extend(contexts)
        return [[self.option_logprobs[o] for o in options] for _ in contexts]


class ScriptedEngine(Engine):
    """An engine whose outputs are written by the test.

    ``reply(prompt, i)`` is the i-th sample's text for a prompt (the chat-formatted conversation);
    ``choice(context, options)`` gives the log-probs of forced options after a raw-text context. Token ids
    are the text's character codes, so counts and log-probs are predictable. With ``cache_choices`` the
    forced options of ``SamplingSettings.force_choice`` come back with the completion (as the hf engine
    reads them from its KV cache); otherwise they are scored from text.
    """

    def __init__(self, reply, choice=None, cache_choices=False):
        super().__init__("scripted", FakeTokenizer())
        self.reply, self.choice, self.cache_choices = reply, choice, cache_choices
        self.contexts = []  # every context scored from text
        self.requests = 0

    def generate(self, conversations, settings, desc="generate"):
        from pipeline.engines.base import Completion, truncate_at_stop

        out = []
        for conv in conversations:
            prompt = self.format_chat(conv)
            row = []
            for i in range(settings.n):
                self.requests += 1
                text, stop = truncate_at_stop(self.reply(prompt, i), settings.stop)
                ids = [ord(ch) for ch in text][:settings.max_new_tokens]
                text = "".join(chr(c) for c in ids)
                forced = None
                if settings.force_choice and self.cache_choices:
                    forced = self.choice(prompt + text + settings.force_choice[0], settings.force_choice[1])
                row.append(Completion(
                    text=text, num_tokens=len(ids), num_prompt_tokens=len(prompt), stop_string=stop, token_ids=ids,
                    finish_reason="length" if len(ids) == settings.max_new_tokens and stop is None else "stop",
                    logprobs=[-0.5] * len(ids) if settings.logprobs else None,
                    stop_logprob=-0.25 if settings.logprobs else None, choice_logprobs=forced))
            out.append(row)
        return out

    def _score_sequences(self, sequences):
        raise NotImplementedError

    def choice_logprobs(self, contexts, options):
        if self.choice is None:
            from pipeline.engines.base import NoLogprobsError

            raise NoLogprobsError("scripted engine without log-probs")
        self.contexts.extend(contexts)
        return [list(self.choice(c, options)) for c in contexts]


def write_pairs(workdir, n, key="M1"):
    """``n`` response pairs (valid PreferencePair rows, no generation log-probs) and no judgment pairs."""
    from pipeline.records import PreferencePair, write_jsonl

    rows = [PreferencePair(pair_id=f"rp{i}", kind="response",
                           prompt=[{"role": "user", "content": f"Name a colour, number {i}."}],
                           chosen=[{"role": "assistant", "content": f"Blue is colour {i}."}],
                           rejected=[{"role": "assistant", "content": f"I will not say anything about {i}, sorry."}],
                           prompt_id=f"p{i}", chosen_id=f"c{i}", rejected_id=f"r{i}", chosen_score=4.0,
                           rejected_score=1.0, iteration=key) for i in range(n)]
    d = workdir / "data" / key
    write_jsonl(d / "response_pairs.jsonl", rows)
    write_jsonl(d / "judgment_pairs.jsonl", [])
    write_jsonl(d / "reflection_pairs.jsonl", [])
