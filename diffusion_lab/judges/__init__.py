"""Judges of generated text: one interface, ``judge(texts, intended_labels) -> list[Verdict]``.

Built from ``conf/judge/<name>.yaml`` through ``hydra.utils.instantiate``: ``classifier`` (a trained
classifier run of this project), ``llm`` (an OpenAI-compatible chat-completions endpoint),
``ensemble`` (agreement of several judges), ``lm_fluency`` (an independent causal LM's fluency beside
another judge's label). Used by ``task=synthesize``.
"""

from diffusion_lab.judges.base import Judge, Verdict
from diffusion_lab.judges.classifier import ClassifierJudge
from diffusion_lab.judges.ensemble import EnsembleJudge
from diffusion_lab.judges.llm import LLMJudge
from diffusion_lab.judges.lm_fluency import LMFluencyJudge

__all__ = ["ClassifierJudge", "EnsembleJudge", "Judge", "LLMJudge", "LMFluencyJudge", "Verdict"]
