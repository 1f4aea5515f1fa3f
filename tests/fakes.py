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
