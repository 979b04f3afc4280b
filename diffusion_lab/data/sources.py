"""Index of the dataset sources: each is built by Hydra from ``conf/dataset/<name>.yaml``.

Every source takes its settings (and ``name``, the dataset name used in run names) in the
constructor and has ``load(seed: int) -> TextSplits``: cleaned, de-duplicated, shuffled with
``seed``, validation carved from train. The shared steps live in ``cleaning.py``.
"""

from diffusion_lab.data.corpora import RtPolaritySource, Wikitext2Source
from diffusion_lab.data.imdb import ImdbSource
from diffusion_lab.data.synthetic import SyntheticSentimentSource
from diffusion_lab.data.text_files import TextFilesSource

__all__ = ["ImdbSource", "RtPolaritySource", "SyntheticSentimentSource", "TextFilesSource", "Wikitext2Source"]
