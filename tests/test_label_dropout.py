"""Label dropout has one convention (``models.conditions``): per batch, one ``torch.rand(())`` from the
site's generator, "no label" = the last condition id; every training site follows it draw for draw."""

from __future__ import annotations

import math
import re

import pytest
import torch

from diffusion_lab.models.conditions import (
    draw_no_label,
    label_conditions,
    no_label_condition,
    num_conditions,
)
from tests.conftest import REPO

V, MASK, LABEL_TOKENS, NOLABEL = 40, 39, [36, 37], 38
LABELS = torch.tensor([0, 1, 1, 0])


def _ids(seed=0):
    x = torch.randint(1, 36, (4, 9), generator=torch.Generator().manual_seed(seed))
    att = torch.ones_like(x)
    att[3, 6:] = 0
    return x, att


def _encoder(conditions=3):
    from diffusion_lab.models.encoder import EncoderDenoiser

    torch.manual_seed(0)
    return EncoderDenoiser(V, pad_token_id=0, num_conditions=conditions, max_length=24, model_type="bert",
                           hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64)


def _diffusion_lm(uncond_prob=0.5, conditions=3):
    from diffusion_lab.masking import LogLinearSchedule
    from diffusion_lab.models.diffusion_lm import DiffusionLM

    return DiffusionLM(_encoder(conditions), LogLinearSchedule(), optimizer=None, mask_token_id=MASK,
                       uncond_prob=uncond_prob, seed=3)


def _ar_lm(uncond_prob=0.5):
    from diffusion_lab.models.ar_lm import AutoregressiveLM
    from diffusion_lab.models.gpt2 import GPT2Denoiser

    torch.manual_seed(0)
    backbone = GPT2Denoiser(V, 0, 3, max_length=16, n_embd=32, n_layer=1, n_head=2, objective="autoregressive")
    return AutoregressiveLM(backbone, mask_token_id=MASK, start_token_id=1, uncond_prob=uncond_prob, seed=3)


def _classifier(lm, infill_weight=0.0):
    from diffusion_lab.classifiers.generative import GenerativeClassifier

    return GenerativeClassifier([lm], "conditional", 2, [math.log(0.5)] * 2, MASK, optimizer=None,
                                label_token_ids=LABEL_TOKENS, nolabel_token_id=NOLABEL, uncond_prob=0.5,
                                infill_weight=infill_weight, seed=5)


def _clone(gen: torch.Generator) -> torch.Generator:
    g = torch.Generator()
    g.set_state(gen.get_state())
    return g


def test_the_convention_ids_draw_and_rule():
    assert num_conditions(2) == 3 and no_label_condition(_encoder(3)) == 2
    assert no_label_condition(_encoder(0)) is None
    gen, ref = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    drops = [draw_no_label(gen, 0.3) for _ in range(400)]
    assert drops == [bool(torch.rand((), generator=ref) < 0.3) for _ in range(400)]  # one rand(()) per batch
    assert torch.equal(gen.get_state(), ref.get_state()) and 0.2 < sum(drops) / 400 < 0.4
    assert not draw_no_label(gen, 0.0) and draw_no_label(gen, 1.0)
    labels = torch.tensor([0, 1, -1, 1])
    hidden = torch.tensor([False, True, False, False])
    assert label_conditions(labels, 2, False, hidden=hidden).tolist() == [0, 2, 2, 1]
    assert label_conditions(labels, 2, True, hidden=hidden).tolist() == [2, 2, 2, 2]
    assert labels.tolist() == [0, 1, -1, 1]


def test_language_models_drop_labels_by_the_convention():
    batch = {"labels": torch.tensor([0, 1, -1, 1])}
    lm = _diffusion_lm()
    seen = set()
    for _ in range(30):  # DiffusionLM: the masking generator
        expected_gen = _clone(lm.mask_generator)
        expected = label_conditions(batch["labels"], 2, draw_no_label(expected_gen, 0.5))
        got = lm._condition(batch)
        assert torch.equal(got, expected) and torch.equal(lm.mask_generator.get_state(), expected_gen.get_state())
        seen.add(tuple(got.tolist()))
    assert seen == {(0, 1, 2, 1), (2, 2, 2, 2)}
    ar = _ar_lm()
    for i in range(30):  # AutoregressiveLM: stateless, seeded by (seed, global_step, batch_idx)
        gen = torch.Generator().manual_seed(3 * 1_000_003 + 0 * 1009 + i)
        assert torch.equal(ar._condition(batch, i), label_conditions(batch["labels"], 2, draw_no_label(gen, 0.5)))
    assert _diffusion_lm(conditions=0)._condition(batch) is None


@pytest.mark.parametrize("site", ["diffusion", "label_infill", "autoregressive"])
def test_the_conditional_classifier_drops_labels_by_the_convention(site):
    """Slot 0 is ``<nolabel>`` and every condition "no label" on a dropped batch; otherwise the label token
    and the label, "no label" on rows whose label slot is masked (``hidden``): ``label_conditions``."""
    clf = _classifier(_ar_lm() if site == "autoregressive" else _diffusion_lm(),
                      infill_weight=0.5 if site == "label_infill" else 0.0)
    backbone = clf.lms[0].backbone
    seen = {}

    def hook(module, args, kw):  # ar_token_scores passes the condition positionally
        seen.update(kw, x=args[0], condition=args[2] if len(args) > 2 else kw["condition"])

    backbone.register_forward_pre_hook(hook, with_kwargs=True)
    drops = []
    for step in range(12):
        ids, att = _ids(step)
        expected_gen = _clone(clf.generator)
        drop = draw_no_label(expected_gen, 0.5)
        clf.layout.generative_loss(clf, ids, att, LABELS)
        slot = seen["x"][:, 0]
        if site == "autoregressive":  # x = [start, label slot, text]
            slot, hidden = seen["x"][:, 1], None
        else:  # the label slot is hidden where it is masked
            hidden = seen["positions"][:, 0]
            assert torch.equal(hidden, slot == MASK)
        assert torch.equal(seen["condition"], label_conditions(LABELS, 2, drop, hidden=hidden))
        visible = slot != MASK
        first = torch.full_like(LABELS, NOLABEL) if drop else torch.tensor(LABEL_TOKENS)[LABELS]
        assert torch.equal(slot[visible], first[visible])
        if site != "label_infill" or drop:  # the infill term draws its label mask from the same generator after
            assert torch.equal(clf.generator.get_state(), expected_gen.get_state())
        drops.append(drop)
    assert any(drops) and not all(drops)


def test_no_site_writes_its_own_convention():
    """The no-label id, the condition count and the dropout draw are written once, in models/conditions.py."""
    own = re.compile(r"num_conditions\s*-\s*1|num_classes\s*\+\s*1|rand\(\(\).*uncond_prob|<\s*[\w.]*uncond_prob")
    offenders = [f"{p.relative_to(REPO)}:{i}: {line.strip()}"
                 for p in sorted((REPO / "diffusion_lab").rglob("*.py")) if p.name != "conditions.py"
                 for i, line in enumerate(p.read_text().splitlines(), 1)
                 if own.search(line) and not line.lstrip().startswith(("#", '"', "``"))]
    assert not offenders, "write these with diffusion_lab.models.conditions:\n" + "\n".join(offenders)
