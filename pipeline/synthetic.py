"""A synthetic but schema-valid iteration (every data file of one key) at any scale, fast and without models.

:func:`write_iteration` writes ``out_dir/data/<key>/*.jsonl`` (the files a real iteration's self_instruct ..
pairs stages write) and a plausible subset of ``out_dir/metrics/<key>/*.json``. It exists to measure how tools
that read an iteration (the CLI, the HTML report) cope with paper scale, and to give their tests rows of every
kind; the rows mean nothing.

- Texts are random sentences from a small built-in vocabulary (with a few characters that need escaping in HTML:
  ``<``, ``&``, quotes, accents, code fences), each prompt with a topic word from :data:`TOPICS` that its
  instruction and most of its responses mention, so that searches find something. Instructions are 40-400
  characters; final responses 200-3000, with a thought before them for most; judgments 300-1000, five rubric
  lines whose "yes" count is the score, ending ``Score: N`` (strict) or ``N/5`` (flexible); forced and dropped
  judgments end without one.
- Scores follow a hidden quality per response: judgments score it with noise (0..5; methods mostly strict, some
  flexible, forced, or dropped with no score); the meta-judge prefers the judgment closer to the hidden quality.
- Rows link and are chosen as in the pipeline, with its own selection functions (``pipeline.pairs``): judged
  responses are those that parsed; response pairs are best vs worst mean score per prompt (no pair on a tie);
  the ``meta_judged`` responses of highest score variance per prompt get extra judgments up to
  ``meta_judgments``, every ordered pair of them meta-judged, ratings, and a judgment pair by Elo.
- ``verifiable=F`` makes that fraction of prompts arithmetic tasks with known answers: their responses are
  verified instead of judged (verified pairs ``vp-`` by reward level) and the first failed attempts get
  reflections and retries (reflection pairs ``fp-``), up to ``reflect_attempts``. Without it those files are
  empty.
- Deterministic: prompt i draws from its own ``random.Random`` seeded by (seed, key, i), so a smaller run is a
  prefix of a larger one with the same seed. Ids are ``records.stable_id`` as the stages make them. Rows are
  streamed to temporary files renamed into place at the end; memory stays small at any scale.

From a shell: ``python scripts/synthetic_iteration.py OUT_DIR`` (its ``--help`` lists the knobs); the tests
and ``bench/page.py`` call :func:`write_iteration` in-process.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import random
import re
import statistics
from collections import Counter
from pathlib import Path
from typing import IO, Any

from pipeline import known_pairs, pairwise_rules, records, templates
from pipeline.config import JudgeTrainingConfig
from pipeline.judging import judge_conversation, response_score, score_variance
from pipeline.pairs import (
    Candidate,
    RatedJudgment,
    generation_record,
    judge_training_pairs,
    select_judgment_pair,
    select_response_pair,
    select_verified_pairs,
)
from pipeline.records import (
    Judgment,
    KnownJudgment,
    MetaJudgment,
    PreferencePair,
    Prompt,
    Rating,
    Reflection,
    Response,
    Verification,
    stable_id,
    user_query,
)
from pipeline.reflection import reflection_request
from pipeline.rewards import reward_level
from pipeline.sampling import RESPONSE_MARKERS, THOUGHT_HEADER, response_prompt
from pipeline.verifiable import rrr_pairs

FILES = ("prompts.jsonl", "responses.jsonl", "verifications.jsonl", "judgments.jsonl", "extra_judgments.jsonl",
         "meta_judgments.jsonl", "ratings.jsonl", "response_pairs.jsonl", "judgment_pairs.jsonl",
         "reflections.jsonl", "reflection_pairs.jsonl", "known_pairs.jsonl", "known_judgments.jsonl",
         "judge_training_pairs.jsonl")

# The templates and settings of params.yaml's demo, named in provenance as the stages name them.
JUDGE_TEMPLATE = "judge_compact.j2"
META_TEMPLATE = "meta_judge.j2"
RESPOND_TEMPLATE = "respond_generic.j2"
RUBRIC = ("Relevance", "Substance", "Usefulness", "Organisation", "Excellence")
MAX_JUDGMENT_CHARS = 1100  # pairs.max_judgment_chars
VERIFIED_PER_PROMPT = 2  # pairs.verified_per_prompt
REFLECTIONS = 4  # reflect.reflections
PER_ATTEMPT = 2  # reflect.per_attempt

TOPICS = ["algebra", "alpine", "anatomy", "antibiotics", "aquarium", "archery", "astronomy", "auction", "avalanche", "bakery", "ballet", "bamboo", "banking", "baroque", "beekeeping", "bicycle", "biology", "blockchain", "bonsai", "botany", "bridges", "budgeting", "calculus", "calligraphy", "camping", "canals", "carbon", "carpentry", "cartography", "castles", "ceramics", "chess", "chemistry", "chocolate", "cinema", "climate", "clocks", "coffee", "comets", "compilers", "composting", "copyright", "coral", "cricket", "cryptography", "cycling", "dairy", "databases", "deserts", "diabetes", "dinosaurs", "diplomacy", "drones", "earthquakes", "ecology", "economics", "elections", "electricity", "embroidery", "encryption", "energy", "entropy", "etiquette", "evolution", "fermentation", "ferries", "fishing", "folklore", "forestry", "fossils", "fractals", "frogs", "galaxies", "gardening", "genetics", "geology", "geometry", "glaciers", "glassblowing", "grammar", "gravity", "harbours", "harvest", "hedgehogs", "heraldry", "hiking", "honey", "hurricanes", "hydraulics", "immunology", "inflation", "insurance", "irrigation", "jazz", "journalism", "kayaking", "kites", "knitting", "languages", "lasers", "lighthouses", "linguistics", "literature", "logistics", "lullabies", "magnetism", "mangroves", "marathons", "margarine", "meditation", "metallurgy", "meteorology", "microbes", "migration", "minerals", "monsoons", "mosaics", "mountains", "mushrooms", "museums", "mythology", "nanotech", "navigation", "neurons", "nutrition", "oceans", "olives", "opera", "optics", "orchards", "origami", "owls", "painting", "pandemics", "paper", "parrots", "penguins", "perfume", "philosophy", "photography", "physics", "pianos", "pilgrimage", "plankton", "plastics", "poetry", "polymers", "pottery", "printing", "probability", "proteins", "puzzles", "pyramids", "quantum", "quilting", "radar", "railways", "rainforests", "recycling", "reefs", "rhetoric", "rivers", "robotics", "rockets", "sailing", "salt", "satellites", "sculpture", "seismology", "semiconductors", "sewing", "shipwrecks", "silk", "skating", "sleep", "soap", "soil", "solar", "sonar", "spices", "statistics", "steam", "submarines", "sundials", "surfing", "swamps", "symphonies", "tapestry", "tariffs", "tea", "telescopes", "tides", "timber", "tornadoes", "tourism", "trains", "translation", "tunnels", "typography", "umbrellas", "vaccines", "vineyards", "violins", "volcanoes", "voting", "weaving", "whales", "windmills", "wolves", "yoghurt", "zebras", "zoology"]

WORDS = ["the", "a", "an", "of", "to", "and", "in", "that", "is", "for", "it", "as", "with", "on", "by", "this", "be", "are", "from", "at", "or", "which", "can", "not", "have", "has", "more", "most", "some", "many", "each", "other", "such", "these", "those", "when", "where", "while", "because", "although", "however", "therefore", "thus", "also", "often", "usually", "rarely", "always", "never", "first", "second", "third", "next", "then", "finally", "before", "after", "during", "between", "among", "within", "without", "through", "across", "around", "about", "above", "below", "under", "over", "into", "onto", "upon", "toward", "against", "along", "beyond", "simple", "complex", "careful", "clear", "quick", "slow", "large", "small", "early", "late", "common", "rare", "useful", "practical", "important", "general", "specific", "typical", "unusual", "modern", "ancient", "local", "global", "natural", "social", "public", "private", "formal", "basic", "advanced", "strong", "weak", "bright", "quiet", "steady", "gentle", "rough", "smooth", "warm", "cold", "open", "closed", "direct", "indirect", "approach", "method", "process", "system", "structure", "pattern", "example", "reason", "result", "effect", "cause", "answer", "question", "detail", "point", "step", "part", "whole", "level", "range", "scale", "rate", "value", "measure", "balance", "change", "growth", "limit", "risk", "benefit", "cost", "choice", "option", "source", "record", "history", "future", "context", "purpose", "problem", "solution", "idea", "theory", "practice", "model", "design", "material", "surface", "layer", "signal", "region", "period", "season", "community", "market", "network", "explain", "describe", "compare", "consider", "notice", "suggest", "improve", "reduce", "increase", "support", "require", "include", "avoid", "allow", "build", "create", "develop", "keep", "follow", "share", "test", "check", "choose", "measure", "observe", "study", "learn", "teach", "plan", "people", "student", "reader", "writer", "teacher", "expert", "worker", "family", "traveller", "researcher", "engineer", "artist", "visitor", "naïve", "café", "façade", "déjà", "résumé", "—", "“quoted”", "‘single’", "<b>bold</b>", "a<b", "a&b", "x>y", "&amp;", "`code`", "5%", "✓", "…"]
SAFE_WORDS = [w for w in WORDS if w.isalpha()]  # digits and markup stay out of verifiable responses

VERBS = ("Explain", "Describe", "Summarize", "Write a short essay about", "Compare two views on",
         "List five facts about", "Give practical advice on", "Write a poem about", "Outline a lesson plan on",
         "What are the main ideas behind", "How would you teach a beginner about", "Argue for and against",
         "Write a product description related to", "Draft an email to a colleague about")
VERDICT_METHODS = (("strict", 0.78), ("flexible", 0.10), ("forced", 0.09), ("dropped", 0.03))
META_METHODS = (("strict", 0.50), ("flexible", 0.15), ("forced", 0.28), ("tie", 0.04), ("no_win", 0.03))


def _settings(n: int, temperature: float, max_new_tokens: int, seed: int = 0) -> dict[str, Any]:
    return {"n": n, "temperature": temperature, "top_p": 0.9, "max_new_tokens": max_new_tokens, "stop": [],
            "seed": seed}


def _pick(rng: random.Random, table: tuple[tuple[str, float], ...]) -> str:
    x = rng.random()
    for name, p in table:
        if x < p:
            return name
        x -= p
    return table[-1][0]


# ------------------------------------------------------------------------------------------------------ text
class Text:
    """Random sentences of one rng, a topic word mixed in."""

    def __init__(self, rng: random.Random, topic: str, plain: bool = False):
        """``plain``: letters only (no digits, markup, lists or code), for answers a verifier reads."""
        self.rng, self.topic, self.plain = rng, topic, plain
        self.words = SAFE_WORDS if plain else WORDS

    def sentence(self, lo: int = 6, hi: int = 18, topic: float = 0.3) -> str:
        rng = self.rng
        words = rng.choices(self.words, k=rng.randint(lo, hi))
        if rng.random() < topic:
            words[rng.randrange(len(words))] = self.topic
        s = " ".join(words)
        return s[0].upper() + s[1:] + rng.choice("....?!")

    def prose(self, target: int, topic: float = 0.3) -> str:
        """Paragraphs of sentences, about ``target`` characters (a last sentence may overshoot)."""
        rng, paras, size = self.rng, [], 0
        while size < target:
            kind = rng.random()
            if kind < 0.1 and not self.plain:
                para = "\n".join(f"{k + 1}. {self.sentence(3, 9, topic)}" for k in range(rng.randint(2, 5)))
            elif kind < 0.15 and not self.plain:
                para = "```\n" + "\n".join(f"{w} = {rng.choice(self.words)}({self.topic})"
                                           for w in rng.sample(SAFE_WORDS, 3)) + "\n```"
            else:
                para = " ".join(self.sentence(topic=topic) for _ in range(rng.randint(2, 5)))
            paras.append(para)
            size += len(para) + 2
        return "\n\n".join(paras)

    def sized(self, lo: int, hi: int, median: float, topic: float = 0.3) -> str:
        """Prose of a length between ``lo`` and ``hi`` (log-normal about ``median``)."""
        target = min(hi, max(lo, int(self.rng.lognormvariate(math.log(median), 0.6))))
        text = self.prose(max(lo, target - 60), topic)
        if len(text) > hi:
            text = text[:hi - 1].rstrip() + "."
        return text


def _tokens(rng: random.Random, pool: list[int], text: str) -> tuple[list[int], float, float]:
    """Made-up token ids (about one per 4 characters: a slice of ``pool``), their log-prob sum and a stop
    log-prob."""
    n = max(1, len(text) // 4)
    start = rng.randrange(len(pool) - n)
    return pool[start:start + n], round(-n * rng.uniform(0.05, 0.6), 6), round(-rng.expovariate(0.5), 6)


# ----------------------------------------------------------------------------------------------- the writer
_FIELDS: dict[type, tuple[str, ...]] = {}


def _row_dict(row: records.Row) -> dict[str, Any]:
    """A shallow ``to_dict`` (``dataclasses.asdict`` deep-copies every token id list: far too slow here)."""
    names = _FIELDS.get(type(row))
    if names is None:
        names = _FIELDS[type(row)] = tuple(f.name for f in dataclasses.fields(row))
    return {n: getattr(row, n) for n in names}


class Writer:
    """Every file of one iteration streamed to a temporary file, renamed into place by :meth:`close`."""

    def __init__(self, folder: Path):
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.tmp = {name: folder / f".{name}.synthetic.tmp" for name in FILES}
        self.fh: dict[str, IO[str]] = {name: p.open("w", encoding="utf-8", buffering=1 << 20)
                                       for name, p in self.tmp.items()}
        self.counts = dict.fromkeys(FILES, 0)

    def write(self, name: str, row: records.Row) -> None:
        self.fh[name].write(json.dumps(_row_dict(row), ensure_ascii=False) + "\n")
        self.counts[name] += 1

    def close(self, ok: bool) -> None:
        for name, fh in self.fh.items():
            if ok:
                fh.flush()
                os.fsync(fh.fileno())
            fh.close()
            if ok:
                os.replace(self.tmp[name], self.folder / name)
            else:
                self.tmp[name].unlink(missing_ok=True)


# ------------------------------------------------------------------------------------------------ the rows
@dataclasses.dataclass
class Stats:
    """What the metrics files report, accumulated prompt by prompt."""

    methods: Counter = dataclasses.field(default_factory=Counter)
    extra_methods: Counter = dataclasses.field(default_factory=Counter)
    meta_methods: Counter = dataclasses.field(default_factory=Counter)
    histogram: Counter = dataclasses.field(default_factory=Counter)
    levels: Counter = dataclasses.field(default_factory=Counter)
    verify_methods: Counter = dataclasses.field(default_factory=Counter)
    response_scores: list = dataclasses.field(default_factory=list)
    judgment_chars: int = 0
    response_chars: int = 0
    thought_chars: int = 0
    parse_ok: int = 0
    tokens: int = 0
    truncated: int = 0
    no_pair: int = 0
    judged_prompts: int = 0
    verified_prompts: int = 0
    first_wins: int = 0
    decided: int = 0
    spreads: list = dataclasses.field(default_factory=list)
    margins: list = dataclasses.field(default_factory=list)
    pair_chars: dict = dataclasses.field(default_factory=lambda: {"rc": 0, "rr": 0, "jc": 0, "jr": 0})
    correct: int = 0
    attempts: int = 0
    retries_ok: int = 0


class Iteration:
    def __init__(self, key: str, responses: int, judgments: int, meta_judged: int, meta_judgments: int,
                 verifiable: float, seed: int, token_ids: bool, reflect_attempts: int, writer: Writer):
        self.key, self.n, self.k, self.meta_judged, self.meta_k = key, responses, judgments, meta_judged, meta_judgments
        self.verifiable, self.seed, self.token_ids, self.reflect_attempts = verifiable, seed, token_ids, reflect_attempts
        self.out, self.stats = writer, Stats()
        m = re.fullmatch(r"M(\d+)", key)
        prev = f"M{int(m.group(1)) - 1}" if m and int(m.group(1)) > 1 else "M0_sft"
        sha = hashlib.sha256(f"synthetic:{seed}:{prev}".encode()).hexdigest()[:16]
        self.made_by = {"model": prev, "model_sha256": sha, "iteration": key}
        sha_of = templates.template_hash
        self.prov_prompt = {**self.made_by, "template_sha": sha_of("self_instruct.j2"),
                            "sampling": {**_settings(1, 0.6, 64), "stop": ["</task>", "<task>"]}}
        self.prov_response = {**self.made_by, "thoughts": "generic", "template": RESPOND_TEMPLATE,
                              "template_sha": sha_of(RESPOND_TEMPLATE), "sampling": _settings(responses, 0.7, 1024)}
        self.prov_judge = {**self.made_by, "template_sha": sha_of(JUDGE_TEMPLATE), "scoring": "parsed",
                           "sampling": _settings(judgments, 0.7, 320)}
        self.prov_extra = {**self.prov_judge, "sampling": _settings(max(1, meta_judgments - judgments), 0.7, 320, 1),
                           "extra": True}
        self.prov_meta = {**self.made_by, "template_sha": sha_of(META_TEMPLATE), "sampling": _settings(1, 0.7, 256)}
        self.prov_verify = {**self.made_by, "format_levels": True}
        self.prov_reflect = {**self.made_by, "template_sha": sha_of("reflect.j2"), "retry_template_sha": sha_of("retry.j2"),
                             "sampling": {**_settings(REFLECTIONS, 0.8, 64), "top_p": 1.0},
                             "retry_sampling": {**_settings(1, 0.0, 96), "top_p": 1.0}}
        self.seen_prompts: set[str] = set()
        # Token ids are slices of one random pool (drawing each id was half the run time); the pool does not
        # depend on the number of prompts, so smaller runs stay prefixes of larger ones.
        self.token_pool = random.Random(f"synthetic-tokens:{seed}").choices(range(100, 49152), k=1 << 18)
        self.prompt_text = ""  # the current prompt's user turn (the thought prompt)

    def _gen(self, rng: random.Random, text: str) -> dict[str, Any]:
        if not self.token_ids:
            return {"num_tokens": max(1, len(text) // 4)}
        ids, lp, stop = _tokens(rng, self.token_pool, text)
        return {"num_tokens": len(ids), "token_ids": ids, "logprob": lp, "stop_logprob": stop}

    # ------------------------------------------------------------------------------------------ prompts
    def prompt(self, i: int, rng: random.Random, task: bool) -> tuple[Prompt, str]:
        """Prompt ``i`` and its topic word (in the instruction of a self-instruct prompt; a task's only colours its
        responses)."""
        topic = TOPICS[rng.randrange(len(TOPICS))]
        while True:
            if task:
                a, b, op = rng.randint(10, 9999), rng.randint(10, 9999), rng.choice("+-*")
                answer = str(a + b if op == "+" else a - b if op == "-" else a * b)
                text = f'What is {a} {op} {b}?\nEnd your reply with a line of the form "Final answer: <number>".'
                family = "arithmetic-4digit"
                task_id = stable_id(family, text, answer)
                row = Prompt(prompt_id=stable_id("p", "task", task_id, text), instruction=text,
                             source=f"task:{family}", answer=answer, verifier="numeric",
                             provenance={**self.made_by, "task_id": task_id,
                                         "task_source": "data/tasks/arithmetic/train.jsonl"})
            else:
                t = Text(rng, topic)
                verb = rng.choice(VERBS)
                text = f"{verb} {topic}"
                target = min(399, max(42, int(rng.lognormvariate(math.log(120), 0.6))))
                while len(text) < target:
                    text += ", " + t.sentence(3, 10, 0.0).lower()[:-1]
                text = text[:target].rstrip(" ,") + ("?" if verb.startswith(("What", "How")) else ".")
                extra = Text(rng, topic).sized(50, 300, 120) if rng.random() < 0.1 else ""
                row = Prompt(prompt_id=stable_id("p", self.key, text), instruction=text, source="self_instruct",
                             input=extra, provenance={**self.prov_prompt, "request": i})
            if row.prompt_id not in self.seen_prompts:
                self.seen_prompts.add(row.prompt_id)
                return row, topic

    # ---------------------------------------------------------------------------------------- responses
    def response(self, rng: random.Random, p: Prompt, index: int, body: str, thought: str,
                 parsed: bool = True) -> Response:
        header, marker = THOUGHT_HEADER, RESPONSE_MARKERS["generic"]
        if not parsed:  # no response marker: everything is the thought, as sampling.split_thought reads it
            output = f"{header}\n{thought}\n\n{body}"
            thought, body = output, ""
        else:
            output = f"{header}\n{thought}\n\n{marker}\n{body}" if thought else f"{marker}\n{body}"
        finish = "length" if rng.random() < 0.08 else "stop"
        instruction = user_query(p.instruction, p.input)
        row = Response(response_id=stable_id("r", p.prompt_id, index, output), prompt_id=p.prompt_id,
                       sample_index=index, instruction=instruction, prompt_text=self.prompt_text,
                       output=output, thought=thought, response=body, parse_ok=parsed, finish_reason=finish,
                       **self._gen(rng, output), provenance=self.prov_response)  # type: ignore[arg-type]
        st = self.stats
        st.tokens += row.num_tokens
        st.truncated += finish == "length"
        if parsed:
            st.parse_ok += 1
            st.response_chars += len(body)
            st.thought_chars += len(thought)
        return row

    def judged_responses(self, rng: random.Random, p: Prompt, topic: str) -> list[tuple[Response, float]]:
        """The prompt's responses, each with its hidden quality (0..5)."""
        base = rng.uniform(0.5, 4.5)
        out = []
        for index in range(self.n):
            t = Text(rng, topic)
            thought = t.sized(80, 1200, 300) if rng.random() < 0.7 else ""
            body = t.sized(200, 3000, 900)
            parsed = rng.random() >= 0.02
            row = self.response(rng, p, index, body, thought, parsed)
            out.append((row, min(5.0, max(0.0, rng.gauss(base, 1.2)))))
        return out

    # ---------------------------------------------------------------------------------------- judgments
    def judgment(self, rng: random.Random, r: Response, quality: float, index: int, topic: str,
                 provenance: dict[str, Any]) -> Judgment:
        method = _pick(rng, VERDICT_METHODS)
        score = min(5, max(0, round(quality + rng.gauss(0, 0.9))))
        yes = set(rng.sample(range(5), score))
        target = min(1000, max(360, int(rng.lognormvariate(math.log(520), 0.4))))
        per_line = (target - 50) // 5  # room for the score line; five lines are at least 300 characters
        t = Text(rng, topic)
        lines = []
        for k, name in enumerate(RUBRIC):
            line = f"{name}: {'yes' if k in yes else 'no'} - "
            while len(line) < per_line:
                line += t.sentence(4, 12, 0.2) + " "
            lines.append(line[:per_line].rstrip())
        text = "\n".join(lines)
        probs = None
        if method == "strict":
            text += f"\nScore: {score}"
        elif method == "flexible":
            text += f"\nAll in all the response earns {score}/5 points."
        else:  # forced and dropped: the judge stopped before a score (cut mid-line, at least 300 characters)
            text = text[:max(300, int(len(text) * rng.uniform(0.85, 1.0)))].rstrip()
            if method == "forced":
                w = [rng.random() for _ in range(6)]
                w[score] = max(w) + rng.random()
                probs = [x / sum(w) for x in w]
        row = Judgment(judgment_id=stable_id("j", r.response_id, index, text), response_id=r.response_id,
                       prompt_id=r.prompt_id, judge_index=index, text=text,
                       score=None if method == "dropped" else float(score), method=method,  # type: ignore[arg-type]
                       digit_probs=probs, **self._gen(rng, text), provenance=provenance)
        self.stats.judgment_chars += len(text)
        return row

    def meta(self, rng: random.Random, r: Response, quality: float, js: list[Judgment], topic: str
             ) -> tuple[list[MetaJudgment], list[Rating], float]:
        """Every ordered pair of ``js`` meta-judged, the ratings, and the Elo spread."""
        def accuracy(j: Judgment) -> float:
            return -3.0 if j.score is None else -abs(j.score - quality)

        rows, wins, losses = [], [0.0] * len(js), [0.0] * len(js)
        st = self.stats
        t = Text(rng, topic)
        for m in range(len(js)):
            for n in range(len(js)):
                if m == n:
                    continue
                first, second = js[m], js[n]
                logit = 1.5 * (accuracy(first) - accuracy(second)) + 0.2  # the first shown wins a little more often
                method = _pick(rng, META_METHODS)
                margin = None
                if method in ("strict", "flexible"):
                    verdict = 1 if rng.random() < 1 / (1 + math.exp(-logit)) else -1
                elif method == "forced":
                    margin = round(logit + rng.gauss(0, 1.0), 6)
                    verdict = 1 if margin > 0 else -1
                elif method == "tie":
                    margin, verdict = round(rng.uniform(-0.05, 0.05), 6), 0
                else:
                    verdict = 0
                letter = "A" if verdict == 1 else "B"
                text = (f"Judgment A: {t.sentence(8, 30, 0.2)} {t.sentence(8, 30, 0.2)}\n"
                        f"Judgment B: {t.sentence(8, 30, 0.2)} {t.sentence(8, 30, 0.2)}")
                if method == "strict":
                    text += f"\nWinner: Judgment {letter}"
                elif method == "flexible":
                    text += f"\nI think the winner is Judgment {letter}, as it {t.sentence(4, 10, 0.0).lower()}"
                elif method == "no_win":
                    text += "\nBoth judgments have merits and neither is clearly better."
                rows.append(MetaJudgment(
                    meta_id=stable_id("mj", first.judgment_id, second.judgment_id, text), prompt_id=r.prompt_id,
                    response_id=r.response_id, first_id=first.judgment_id, second_id=second.judgment_id, text=text,
                    verdict=verdict, method=method, forced_margin=margin,  # type: ignore[arg-type]
                    provenance={**self.prov_meta, "first_index": m, "second_index": n}))
                st.meta_methods[method] += 1
                if verdict:
                    st.decided += 1
                    st.first_wins += verdict == 1
                    w, lo = (m, n) if verdict == 1 else (n, m)
                    wins[w] += 1
                    losses[lo] += 1
                else:
                    for x in (m, n):
                        wins[x] += 0.5
                        losses[x] += 0.5
        ratings = [Rating(judgment_id=j.judgment_id, response_id=r.response_id, prompt_id=r.prompt_id,
                          elo=round(1000 + 400 * math.log10((wins[i] + 0.5) / (losses[i] + 0.5)), 4),
                          wins=wins[i], losses=losses[i]) for i, j in enumerate(js)]
        elos = [x.elo for x in ratings]
        return rows, ratings, max(elos) - min(elos)

    # ------------------------------------------------------------------------------------------ prompts
    def judged_prompt(self, rng: random.Random, p: Prompt, topic: str) -> None:
        out, st = self.out, self.stats
        st.judged_prompts += 1
        rs = self.judged_responses(rng, p, topic)
        by_response: dict[str, list[Judgment]] = {}
        for r, q in rs:
            out.write("responses.jsonl", r)
            if not r.parse_ok:
                continue
            js = [self.judgment(rng, r, q, i, topic, self.prov_judge) for i in range(self.k)]
            by_response[r.response_id] = js
            for j in js:
                out.write("judgments.jsonl", j)
                st.methods[j.method] += 1
                if j.score is not None:
                    st.histogram[round(j.score)] += 1
            s = response_score([j.score for j in js])
            if s is not None:
                st.response_scores.append(s)
        rmap = {r.response_id: r for r, _ in rs}
        # response pair: best vs worst mean score (pipeline.pairs.select_response_pair, rho 0)
        cands = [Candidate(rid, s, len(rmap[rid].response)) for rid, js in by_response.items()
                 if (s := response_score([j.score for j in js])) is not None]
        picked = select_response_pair(cands, 0.0)
        if picked is None:
            st.no_pair += 1
        else:
            chosen, rejected = picked
            c, rj = rmap[chosen.id], rmap[rejected.id]
            out.write("response_pairs.jsonl", PreferencePair(
                pair_id=stable_id("rp", chosen.id, rejected.id), kind="response",
                prompt=[{"role": "user", "content": c.prompt_text}],
                chosen=[{"role": "assistant", "content": c.output}],
                rejected=[{"role": "assistant", "content": rj.output}],
                prompt_id=p.prompt_id, chosen_id=chosen.id, rejected_id=rejected.id, chosen_score=chosen.score,
                rejected_score=rejected.score, iteration=self.key,
                provenance={"length_rho": 0.0, "unparsed_response": "drop", "chosen_chars": chosen.length,
                            "rejected_chars": rejected.length},
                generated=generation_record(c, rj)))
            st.pair_chars["rc"] += len(c.output)
            st.pair_chars["rr"] += len(rj.output)
            st.margins.append(chosen.score - rejected.score)
        # meta-judging: the responses of highest score variance (ties: the earliest)
        order = list(by_response)
        selected = sorted(order, key=lambda rid: (-score_variance([j.score for j in by_response[rid]]),
                                                  order.index(rid)))[:self.meta_judged]
        quality = {r.response_id: q for r, q in rs}
        for rid in sorted(selected, key=order.index):
            r, js = rmap[rid], by_response[rid]
            extra = [self.judgment(rng, r, quality[rid], i, topic, self.prov_extra)
                     for i in range(len(js), self.meta_k)]
            for j in extra:
                out.write("extra_judgments.jsonl", j)
                st.extra_methods[j.method] += 1
            compared = [*js, *extra][:self.meta_k]
            metas, ratings, spread = self.meta(rng, r, quality[rid], compared, topic)
            st.spreads.append(spread)
            for row in metas:
                out.write("meta_judgments.jsonl", row)
            for row in ratings:
                out.write("ratings.jsonl", row)
            jmap = {j.judgment_id: j for j in compared}
            pick = select_judgment_pair([RatedJudgment(x.judgment_id, x.elo, len(jmap[x.judgment_id].text))
                                         for x in ratings], MAX_JUDGMENT_CHARS)
            if pick is None:
                continue
            cj, rj = pick
            out.write("judgment_pairs.jsonl", PreferencePair(
                pair_id=stable_id("jp", cj.id, rj.id), kind="judgment",
                prompt=judge_conversation(r.instruction, r.response, JUDGE_TEMPLATE),
                chosen=[{"role": "assistant", "content": jmap[cj.id].text}],
                rejected=[{"role": "assistant", "content": jmap[rj.id].text}],
                prompt_id=r.prompt_id, chosen_id=cj.id, rejected_id=rj.id, chosen_score=cj.elo,
                rejected_score=rj.elo, iteration=self.key,
                provenance={"response_id": rid, "max_judgment_chars": MAX_JUDGMENT_CHARS},
                generated=generation_record(jmap[cj.id], jmap[rj.id])))
            st.pair_chars["jc"] += len(jmap[cj.id].text)
            st.pair_chars["jr"] += len(jmap[rj.id].text)

    def _answer_text(self, rng: random.Random, t: Text, p: Prompt, right: float) -> tuple[str, str | None, str]:
        """A worked answer: (text, the answer it gives or None, how it is written: strict|flexible|none)."""
        a, op, b = p.instruction.split("?")[0].split()[2:5]
        correct = rng.random() < right
        value = p.answer if correct else str(int(p.answer or 0) + rng.choice([-1, 1]) * rng.randint(1, 99))
        work = f"{t.sentence(5, 12, 0.0)} We compute {a} {op} {b} step by step. {t.sentence(5, 12, 0.0)}"
        method = _pick(rng, (("strict", 0.8), ("flexible", 0.15), ("none", 0.05)))
        if method == "strict":
            return f"{work}\nFinal answer: {value}", value, method
        if method == "flexible":
            return f"{work} So the result is {value}.", value, method
        return t.prose(rng.randint(150, 400), 0.0), None, method

    def verified_prompt(self, rng: random.Random, p: Prompt, topic: str) -> None:
        out, st = self.out, self.stats
        st.verified_prompts += 1
        right = rng.choice([0.0, 0.3, 0.6, 0.9, 1.0])
        rows: list[tuple[Response, Verification]] = []
        for index in range(self.n):
            t = Text(rng, topic, plain=True)
            body, value, method = self._answer_text(rng, t, p, right)
            thought = t.sized(80, 600, 200) if rng.random() < 0.7 else ""
            r = self.response(rng, p, index, body, thought)
            correct = value is not None and value == p.answer
            v = Verification(response_id=r.response_id, prompt_id=p.prompt_id, verifier="numeric", extracted=value,
                             method=method, correct=correct, level=reward_level(correct, method, True),  # type: ignore[arg-type]
                             detail="" if correct else "no answer found" if value is None else "wrong answer",
                             provenance=self.prov_verify)
            out.write("responses.jsonl", r)
            out.write("verifications.jsonl", v)
            rows.append((r, v))
            st.levels[v.level] += 1
            st.verify_methods[method] += 1
            st.correct += correct
        rmap = {r.response_id: (r, v) for r, v in rows}
        for chosen_id, rejected_id in select_verified_pairs([(r.response_id, v.level) for r, v in rows],
                                                            VERIFIED_PER_PROMPT):
            (c, vc), (rj, vr) = rmap[chosen_id], rmap[rejected_id]
            out.write("response_pairs.jsonl", PreferencePair(
                pair_id=stable_id("vp", chosen_id, rejected_id), kind="response",
                prompt=[{"role": "user", "content": c.prompt_text}],
                chosen=[{"role": "assistant", "content": c.output}],
                rejected=[{"role": "assistant", "content": rj.output}],
                prompt_id=p.prompt_id, chosen_id=chosen_id, rejected_id=rejected_id, chosen_score=float(vc.level),
                rejected_score=float(vr.level), iteration=self.key,
                provenance={"reward": "verifier:numeric", "chosen_answer": vc.extracted, "chosen_method": vc.method,
                            "rejected_answer": vr.extracted, "rejected_method": vr.method,
                            "rejected_correct": vr.correct, "chosen_chars": len(c.output),
                            "rejected_chars": len(rj.output)},
                generated=generation_record(c, rj)))
            st.pair_chars["rc"] += len(c.output)
            st.pair_chars["rr"] += len(rj.output)
            st.margins.append(vc.level - vr.level)
        self.known(p, rows)
        failed = [r for r, v in rows if not v.correct]
        if failed and st.attempts < self.reflect_attempts:  # the first failed attempt of each prompt, in order
            self.reflect(rng, p, failed[0], topic)

    def known(self, p: Prompt, rows: list[tuple[Response, Verification]]) -> None:
        """The judge on this prompt's known pair (stage judge_training, pairwise): two judgments per order, each
        right with probability 0.6, and the judge-training pairs they make. A generator of its own, so that the
        other files come out as they did before these were written."""
        rng = random.Random(f"synthetic-known:{self.seed}:{self.key}:{p.prompt_id}")
        found, _ = known_pairs.from_verifications([r for r, _ in rows], [v for _, v in rows], split="train",
                                                  per_prompt=1, seed=self.seed, iteration=self.key)
        judged = []
        for k in found:
            self.out.write("known_pairs.jsonl", k)
            for order, better_as in (("better_first", "A"), ("worse_first", "B")):
                a, b = (k.better, k.worse) if order == "better_first" else (k.worse, k.better)
                ask = pairwise_rules.pairwise_conversation(k.instruction, a, b)[0]["content"]
                for i in range(2):
                    letter = better_as if rng.random() < 0.6 else ("B" if better_as == "A" else "A")
                    text = f"{Text(rng, 'judging', plain=True).sentence(8, 20, 0.0)}\nWinner: {letter}"
                    judged.append(KnownJudgment(
                        judgment_id=stable_id("kj", k.known_id, order, i, text), known_id=k.known_id,
                        prompt_id=k.prompt_id, source=k.source, mode="pairwise", shown=order,  # type: ignore[arg-type]
                        judge_index=i, prompt_text=ask, text=text, verdict=letter, score=None, method="strict",
                        correct=letter == better_as, **self._gen(rng, text),
                        provenance=self.prov_verify))
        for j in judged:
            self.out.write("known_judgments.jsonl", j)
        for pair in judge_training_pairs(judged, JudgeTrainingConfig(), self.key)[0]:
            self.out.write("judge_training_pairs.jsonl", pair)

    def reflect(self, rng: random.Random, p: Prompt, attempt: Response, topic: str) -> None:
        out, st = self.out, self.stats
        st.attempts += 1
        ask = reflection_request(p.instruction, attempt.output)
        t = Text(rng, topic, plain=True)
        rows = []
        for i in range(REFLECTIONS):
            text = " ".join(t.sentence(6, 16, 0.3) for _ in range(rng.randint(2, 3)))
            body, value, method = self._answer_text(rng, t, p, 0.4)
            ok = value is not None and value == p.answer
            rows.append(Reflection(
                reflection_id=stable_id("rf", attempt.response_id, i, text), response_id=attempt.response_id,
                prompt_id=p.prompt_id, reflection_index=i, prompt_text=ask, text=text, retry=body,
                retry_extracted=value, retry_method=method, retry_correct=ok,  # type: ignore[arg-type]
                **self._gen(rng, text), provenance=self.prov_reflect))
            st.retries_ok += ok
        for row in rows:
            out.write("reflections.jsonl", row)
        rmap = {x.reflection_id: x for x in rows}
        for chosen_id, rejected_id in rrr_pairs([(x.reflection_id, x.retry_correct) for x in rows], PER_ATTEMPT):
            c, rj = rmap[chosen_id], rmap[rejected_id]
            out.write("reflection_pairs.jsonl", PreferencePair(
                pair_id=stable_id("fp", chosen_id, rejected_id), kind="reflection",
                prompt=[{"role": "user", "content": c.prompt_text}],
                chosen=[{"role": "assistant", "content": c.text}],
                rejected=[{"role": "assistant", "content": rj.text}],
                prompt_id=p.prompt_id, chosen_id=chosen_id, rejected_id=rejected_id, chosen_score=1.0,
                rejected_score=0.0, iteration=self.key,
                provenance={"reward": "retry verified", "attempt_id": attempt.response_id,
                            "chosen_retry_answer": c.retry_extracted, "rejected_retry_answer": rj.retry_extracted},
                generated=generation_record(c, rj)))

    def run(self, prompts: int) -> None:
        for i in range(prompts):
            rng = random.Random(f"synthetic:{self.seed}:{self.key}:{i}")
            # Prompt i is a task when floor(i * fraction) steps up: the exact count, evenly spread.
            task = math.floor((i + 1) * self.verifiable) > math.floor(i * self.verifiable)
            p, topic = self.prompt(i, rng, task)
            self.out.write("prompts.jsonl", p)
            self.prompt_text = response_prompt(user_query(p.instruction, p.input), "generic")
            if task:
                self.verified_prompt(rng, p, topic)
            else:
                self.judged_prompt(rng, p, topic)

    # ------------------------------------------------------------------------------------------ metrics
    def metrics(self) -> dict[str, dict[str, Any]]:
        st, c = self.stats, self.out.counts
        responses, judgments = c["responses.jsonl"], c["judgments.jsonl"]
        m, e, mm = st.methods, st.extra_methods, st.meta_methods

        def rate(x: int, n: int) -> float | None:
            return x / n if n else None

        def mean(x: list) -> float | None:
            return statistics.fmean(x) if x else None

        rp, jp = c["response_pairs.jsonl"], c["judgment_pairs.jsonl"]
        return {
            "sample": {"prompts": c["prompts.jsonl"], "responses": responses, "parse_ok": st.parse_ok,
                       "parse_rate": rate(st.parse_ok, responses) or 0.0, "thoughts": "generic",
                       "mean_response_chars": st.response_chars / max(1, st.parse_ok),
                       "mean_thought_chars": st.thought_chars / max(1, st.parse_ok), "generated_tokens": st.tokens,
                       "sequences": responses, "truncated": st.truncated, "seconds": 0.0},
            "judge": {"judgments": judgments, "responses": st.parse_ok - c["verifications.jsonl"],
                      "strict": m["strict"], "flexible": m["flexible"], "forced": m["forced"], "dropped": m["dropped"],
                      "parse_rate": rate(m["strict"] + m["flexible"], judgments) or 0.0,
                      "strict_rate": rate(m["strict"], judgments) or 0.0,
                      "score_histogram": {str(s): st.histogram[s] for s in range(6)},
                      "mean_score": mean(st.response_scores),
                      "score_std": statistics.pstdev(st.response_scores) if len(st.response_scores) > 1 else 0.0,
                      "mean_judgment_chars": st.judgment_chars / max(1, judgments + c["extra_judgments.jsonl"]),
                      "scoring": "parsed", "verified_responses": c["verifications.jsonl"], "judge_vs_truth": None,
                      "seconds": 0.0},
            "meta_judge": {"responses_meta_judged": len(st.spreads), "comparisons": c["meta_judgments.jsonl"],
                           "extra_judgments": c["extra_judgments.jsonl"], "strict": mm["strict"],
                           "flexible": mm["flexible"], "forced": mm["forced"], "ties": mm["tie"],
                           "no_win": mm["no_win"], "calibrated": False, "calibration_offset": 0.0,
                           "parse_rate": rate(mm["strict"] + mm["flexible"], c["meta_judgments.jsonl"]) or 0.0,
                           "position_bias": rate(st.first_wins, st.decided),
                           "elo_spread_mean": mean(st.spreads) or 0.0,
                           "extra_judge": {"judgments": c["extra_judgments.jsonl"], **{k: e[k] for k in
                                           ("strict", "flexible", "forced", "dropped")}} if e else None,
                           "seconds": 0.0},
            "pairs": {"prompts": st.judged_prompts + st.verified_prompts, "response_pairs": rp,
                      "verified_pairs": rp - (st.judged_prompts - st.no_pair), "verified_prompts": st.verified_prompts,
                      "dropped_equal_scores": st.no_pair, "dropped_chosen_too_long": 0, "judgment_pairs": jp,
                      "judgments_too_long": 0, "length_rho": 0.0, "reflection_pairs": c["reflection_pairs.jsonl"],
                      "response_chosen_chars": st.pair_chars["rc"] / max(1, rp),
                      "response_rejected_chars": st.pair_chars["rr"] / max(1, rp),
                      "judgment_chosen_chars": st.pair_chars["jc"] / max(1, jp),
                      "judgment_rejected_chars": st.pair_chars["jr"] / max(1, jp),
                      "score_margin_mean": mean(st.margins), "seconds": 0.0},
            "verify": {"tasks": st.verified_prompts, "verified": c["verifications.jsonl"], "correct": st.correct,
                       "accuracy": rate(st.correct, c["verifications.jsonl"]),
                       "strict": st.verify_methods["strict"], "flexible": st.verify_methods["flexible"],
                       "unextracted": st.verify_methods["none"], "judged": responses - c["verifications.jsonl"],
                       "level_histogram": {str(k): v for k, v in sorted(st.levels.items())}, "seconds": 0.0},
            "reflect": {"enabled": st.verified_prompts > 0, "failed_attempts": st.attempts,
                        "reflections": c["reflections.jsonl"],
                        "retry_success_rate": rate(st.retries_ok, c["reflections.jsonl"]), "seconds": 0.0},
        }


def write_iteration(out_dir: Path, key: str = "M1", prompts: int = 5000, responses: int = 7, judgments: int = 3,
                    meta_judged: int = 1, verifiable: float = 0.0, seed: int = 0, *, meta_judgments: int = 5,
                    token_ids: bool = True, reflect_attempts: int = 32, metrics: bool = True) -> dict[str, int]:
    """Write ``out_dir/data/<key>/*.jsonl`` (and ``out_dir/metrics/<key>/*.json`` with ``metrics``); returns the
    row count of every data file.

    ``meta_judgments``: judgments compared per meta-judged response (meta_judge.num_judgments; extra judgments
    are drawn when it exceeds ``judgments``). ``token_ids``: made-up token ids and log-probs on generated rows,
    as the real stages write them (they are most of the bytes). ``reflect_attempts``: failed attempts
    reflected on (reflect.max_attempts).
    """
    if prompts < 1 or responses < 2 or judgments < 1 or meta_judged < 0 or meta_judgments < 2:
        raise ValueError("need prompts >= 1, responses >= 2, judgments >= 1, meta_judged >= 0, meta_judgments >= 2")
    if not 0.0 <= verifiable <= 1.0:
        raise ValueError(f"verifiable is a fraction of the prompts, between 0 and 1, got {verifiable}")
    out_dir = Path(out_dir)
    writer = Writer(out_dir / "data" / key)
    it = Iteration(key, responses, judgments, meta_judged, meta_judgments, verifiable, seed, token_ids,
                   reflect_attempts, writer)
    ok = False
    try:
        it.run(prompts)
        ok = True
    finally:
        writer.close(ok)
    if metrics:
        for name, values in it.metrics().items():
            records.write_json(out_dir / "metrics" / key / f"{name}.json", values)
    return dict(writer.counts)
