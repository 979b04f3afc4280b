"""Evaluation. Model-independent functions (exported here): perturbations, OOD metrics, deletion
curves, HTML. The suite of ``task=evaluate`` builds on them: ``models`` (every model of a classifier
run behind one text -> log-joint interface), ``data`` (the run's items, shift and OOD sets), ``suite``
(the sections of evaluation.json), ``explain`` (token attributions), ``figures``, ``suite_page`` (report.html), ``publish``."""

from diffusion_lab.evaluation.deletion import deletion_curve
from diffusion_lab.evaluation.html import escape, self_contained_report, token_heatmap_html
from diffusion_lab.evaluation.ood import energy_score, length_matched_indices, max_softmax_score, ood_metrics
from diffusion_lab.evaluation.perturbations import (
    PERTURBATIONS,
    build_frequency_vocab,
    char_typos,
    mask_top_words,
    n_changed,
    perturb,
    word_deletion,
    word_swap,
)

__all__ = [
    "PERTURBATIONS",
    "build_frequency_vocab",
    "char_typos",
    "deletion_curve",
    "energy_score",
    "escape",
    "length_matched_indices",
    "mask_top_words",
    "max_softmax_score",
    "n_changed",
    "ood_metrics",
    "perturb",
    "self_contained_report",
    "token_heatmap_html",
    "word_deletion",
    "word_swap",
]
