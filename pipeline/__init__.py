"""Self-rewarding / meta-rewarding iterative DPO: the library behind the DVC stages in ``stages/``."""
