"""The helpers that replaced duplicated code: real tokens minus a prefix, prepending a token, label conditions."""

from __future__ import annotations

from types import SimpleNamespace

import torch

from diffusion_lab.classifiers.conditional_layout import ConditionalLayout
from diffusion_lab.classifiers.label_tokens import with_prefix
from diffusion_lab.classifiers.per_class_layout import PerClassLayout
from diffusion_lab.masking import LogLinearSchedule, real_tokens
from diffusion_lab.models.ar_likelihood import prepend_start_token, prepend_token
from diffusion_lab.models.conditions import label_conditions

ATT = torch.tensor([[1, 1, 1, 1, 0], [1, 1, 0, 0, 0]])


def test_real_tokens_minus_prefix_and_outside_the_score_mask():
    score = torch.tensor([[0, 1, 1, 1, 1], [1, 1, 1, 1, 1]], dtype=torch.bool)
    assert real_tokens(ATT).tolist() == ATT.bool().tolist()
    assert real_tokens(ATT, prefix_keep=1).tolist() == [[False, True, True, True, False], [False, True, False, False, False]]
    assert real_tokens(ATT, 0, score)[0].tolist() == [False, True, True, True, False]
    bool_att = ATT.bool()
    real_tokens(bool_att)[:, 1] = False  # a new tensor: the caller's mask is never edited
    assert bool_att.equal(ATT.bool())
    assert LogLinearSchedule(prefix_keep=2).maskable(ATT).equal(real_tokens(ATT, 2))


def test_the_class_scorer_masks_real_tokens_minus_its_label_slot():
    """``ClassScorer.inputs`` (classifier scoring) uses the same rule: real tokens within the score mask,
    the prepended label slot (conditional) never maskable, always a new tensor."""
    from diffusion_lab.classifiers.scoring import ClassScorer

    score = torch.tensor([[0, 1, 1, 1, 1], [1, 1, 1, 1, 1]], dtype=torch.bool)
    conditional = ClassScorer(SimpleNamespace(layout=ConditionalLayout(), label_token_ids=[7, 8]))
    ids, att, maskable = conditional.inputs(torch.ones_like(ATT), ATT, score)
    assert ids[:, 0].tolist() == [7, 7] and att[:, 0].tolist() == [1, 1]
    assert maskable.tolist() == real_tokens(att, 1, torch.cat([torch.zeros_like(score[:, :1]), score], 1)).tolist()
    assert maskable.tolist() == [[False, False, True, True, True, False], [False, True, True, False, False, False]]
    assert conditional.inputs(torch.ones_like(ATT), ATT)[2][:, 1:].equal(ATT.bool())
    per_class = ClassScorer(SimpleNamespace(layout=PerClassLayout()))
    bool_att = ATT.bool()
    _, _, maskable = per_class.inputs(torch.ones_like(ATT), bool_att)
    assert maskable.equal(real_tokens(ATT)) and maskable.data_ptr() != bool_att.data_ptr()
    assert per_class.inputs(torch.ones_like(ATT), ATT, score)[2].equal(real_tokens(ATT, 0, score))


def test_one_prepend_helper_for_start_and_label_tokens():
    ids = torch.tensor([[5, 6, 7], [8, 9, 1]])
    att = torch.tensor([[1, 1, 1], [1, 1, 0]])
    x, a = prepend_token(ids, att, torch.tensor([2, 3]))
    assert x.tolist() == [[2, 5, 6, 7], [3, 8, 9, 1]] and a.tolist() == [[1, 1, 1, 1], [1, 1, 1, 0]]
    assert all(u.equal(v) for u, v in zip(with_prefix(ids, att, torch.tensor([2, 3])), (x, a), strict=True))
    s, b = prepend_start_token(ids, None, 0)
    assert s[:, 0].tolist() == [0, 0] and b.tolist() == [[1] * 4] * 2 and s.dtype == ids.dtype


def test_label_conditions_drop_and_unlabelled_rows():
    labels = torch.tensor([0, 1, -1])
    assert label_conditions(labels, 2, drop=False).tolist() == [0, 1, 2]
    assert label_conditions(labels, 2, drop=torch.tensor(True)).tolist() == [2, 2, 2]
    assert labels.tolist() == [0, 1, -1]
