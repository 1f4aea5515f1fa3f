"""Checkable constraints on open instructions: IFEval's 25 instruction types (Zhou et al., 2023, arXiv 2311.07911).

- :mod:`.spec`: the ids, each one's arguments, and what makes a set of them unusable (read before any model loads);
- :mod:`.checkers`: each type's rule on one response (IFEval's strict rule), and a one-line reason;
- :mod:`.scoring`: strict and loose verdicts over a response, and IFEval's four accuracies with standard errors.

Written here rather than taken from lm-eval or lighteval: both download NLTK's punkt data when imported, which an
offline machine cannot do. The rules follow IFEval's reference checkers; where a count may differ, the
:mod:`.checkers` docstring says so.
"""
