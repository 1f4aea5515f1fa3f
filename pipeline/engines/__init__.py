"""Generation backends behind one interface.

- ``base``: the interface (:class:`~pipeline.engines.base.Engine`, ``SamplingSettings``, ``Completion``) that
  the steps and the shard cache use; it imports no backend.
- ``hf``, ``vllm``, ``server`` (vLLM servers, completions over token ids), ``openai`` (an OpenAI-compatible chat
  API): the backends, each imported only where it is built.
- ``factory``: ``make_engine``, the backend params ask for, reached only by the stages that generate.

This file imports nothing, so that a module needing only the interface depends on no backend.
"""
