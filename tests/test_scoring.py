"""Fast scoring: batched classes, device masks, sequential stopping, per-item pruning, documents."""

import math
from types import SimpleNamespace

import pytest
import torch

from diffusion_lab.classifiers.conditional_layout import ConditionalLayout
from diffusion_lab.classifiers.per_class_layout import PerClassLayout
from diffusion_lab.classifiers.scoring import ClassScorer, class_log_likelihoods
from diffusion_lab.likelihood import device_generator, elbo_log_likelihood, stratified_mask_draws
from tests.conftest import TableBackbone

V, MASK = 12, 11


def _tables(num_classes, seed=0, spread=1.0):
    g = torch.Generator().manual_seed(seed)
    base = torch.randn(V, generator=g)
    tables = []
    for _ in range(num_classes):
        t = base + spread * torch.randn(V, generator=g)
        t[MASK] = -30.0
        tables.append(torch.log_softmax(t, 0))
    return tables


def per_class_clf(tables):
    lms = [SimpleNamespace(backbone=TableBackbone(t)) for t in tables]
    return SimpleNamespace(layout=PerClassLayout(), lms=lms, num_classes=len(tables), mask_token_id=MASK)


def _sample(table, n, length, seed):
    return torch.multinomial(table.exp(), n * length, replacement=True,
                             generator=torch.Generator().manual_seed(seed)).view(n, length)


def _tiny_conditional():
    from diffusion_lab.models.encoder import EncoderDenoiser

    torch.manual_seed(0)
    backbone = EncoderDenoiser(40, pad_token_id=0, num_conditions=3, max_length=24, model_type="bert",
                               hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64).eval()
    return SimpleNamespace(layout=ConditionalLayout(), lms=[SimpleNamespace(backbone=backbone)], num_classes=2,
                           mask_token_id=39, label_token_ids=[36, 37])


def test_batched_classes_equal_the_per_class_dense_loop_draw_for_draw():
    """One pass with every class of a draw (sparse head) == the old loop: class by class, dense logits."""
    clf = _tiny_conditional()
    scorer = ClassScorer(clf)
    x = torch.randint(1, 36, (3, 10), generator=torch.Generator().manual_seed(1))
    att = torch.ones_like(x)
    att[2, 7:] = 0
    ids, a, maskable = scorer.inputs(x, att)
    batched = elbo_log_likelihood(scorer.score, ids, a, 39, 4, conditions=[0, 1], prefix_keep=1,
                                  generator=torch.Generator().manual_seed(5), chunk_size=5)
    draws = stratified_mask_draws(maskable, 4, torch.Generator().manual_seed(5))  # the same draws, by hand
    for c in range(2):
        by_hand = torch.zeros(3, dtype=torch.float64)
        for k in range(4):
            m = draws.masked[:, k]
            logp = torch.log_softmax(scorer.logits(c, torch.where(m, 39, ids), a), -1)
            tok = logp.gather(-1, ids[..., None])[..., 0] * m
            by_hand += tok.sum(1).double() * draws.weight[:, k].double() / 4
        assert torch.allclose(batched[:, c], by_hand, atol=1e-4), c
        single = elbo_log_likelihood(scorer.score, ids, a, 39, 4, conditions=[c], prefix_keep=1,
                                     generator=torch.Generator().manual_seed(5))
        assert torch.allclose(batched[:, c], single[:, 0], atol=1e-4)


def test_bf16_score_precision_runs_the_backbone_in_bfloat16_and_stays_close_to_float32():
    """classifier.score_precision=bf16: the same draws under bfloat16 autocast; log p(x | y) within a
    small relative error of float32, the output float64 either way, and not bit-identical (it did run)."""
    clf = _tiny_conditional()
    x = torch.randint(1, 36, (4, 12), generator=torch.Generator().manual_seed(2))
    dtypes = []
    hook = clf.lms[0].backbone.register_forward_hook(lambda m, i, o: dtypes.append(o.dtype))
    out = {}
    for precision in ("32", "bf16"):
        clf.hparams = {"score_precision": precision}
        out[precision] = class_log_likelihoods(clf, x, torch.ones_like(x), num_draws=4,
                                               generator=torch.Generator().manual_seed(5)).log_lik
    hook.remove()
    assert dtypes[0] == torch.float32 and dtypes[-1] == torch.bfloat16
    assert out["bf16"].dtype == torch.float64
    rel = ((out["bf16"] - out["32"]).abs() / out["32"].abs()).max()
    assert 0 < rel < 0.02


def test_discriminative_baseline_scores_at_the_classifiers_score_precision():
    """build_discriminative passes classifier.score_precision: bf16 runs its forward in bfloat16 at
    scoring (log_joint), float64 scores out; float32 stays float32."""
    from diffusion_lab.classifiers.discriminative import DiscriminativeClassifier

    backbone = _tiny_conditional().lms[0].backbone
    x = torch.randint(1, 36, (4, 12), generator=torch.Generator().manual_seed(2))
    dtypes, out = [], {}
    for precision in ("32", "bf16"):
        torch.manual_seed(0)
        disc = DiscriminativeClassifier(backbone, 2, optimizer=None, score_precision=precision).eval()
        disc.head.register_forward_hook(lambda m, i, o: dtypes.append(o.dtype))
        out[precision], _ = disc.log_joint(x, torch.ones_like(x))
    assert dtypes == [torch.float32, torch.bfloat16]
    assert out["bf16"].dtype == torch.float64 and not torch.equal(out["bf16"], out["32"])
    assert torch.allclose(out["bf16"], out["32"], atol=0.05)


def test_device_masks_are_reproducible_from_the_seed():
    maskable = torch.ones(4, 30, dtype=torch.bool)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for device in devices:
        m = maskable.to(device)
        a = stratified_mask_draws(m, 6, device_generator(3, device))
        b = stratified_mask_draws(m, 6, device_generator(3, device))
        c = stratified_mask_draws(m, 6, device_generator(4, device))
        assert a.masked.device.type == device
        assert torch.equal(a.masked, b.masked) and torch.equal(a.weight, b.weight)
        assert not torch.equal(a.masked, c.masked)


def _sequential_on_two_context_free_classes(**kwargs):
    """``(scores, exact log-likelihoods)``: 64 sequential draws at z = 3 on 12 items of two table LMs."""
    tables = _tables(2, seed=1, spread=1.0)
    clf = per_class_clf(tables)
    x = torch.cat([_sample(tables[0], 6, 40, 0), _sample(tables[1], 6, 40, 1)])
    exact = torch.stack([t[x].sum(1) for t in tables], 1).double()
    scores = class_log_likelihoods(clf, x, torch.ones_like(x), num_draws=64, sequential=True, stop_z=3.0,
                                   generator=torch.Generator().manual_seed(0), **kwargs)
    return scores, exact


def test_sequential_rule_returns_the_exact_argmax_and_stops_early_on_easy_items():
    scores, exact = _sequential_on_two_context_free_classes(stage_draws=4)
    assert torch.equal(scores.log_lik.argmax(1), exact.argmax(1))
    easy = (exact[:, 0] - exact[:, 1]).abs() > 10
    assert easy.any()
    assert (scores.passes[easy] < 64 * 2).all()  # decided before num_draws
    assert scores.passes.max() <= 64 * 2 and scores.forward_passes < 64 * 2
    # the same seed gives the same decisions
    again, _ = _sequential_on_two_context_free_classes(stage_draws=4)
    assert torch.equal(again.passes, scores.passes) and torch.equal(again.log_lik, scores.log_lik)


def test_sequential_plan_keeps_a_first_stage_for_the_standard_error_then_steps_of_stage_draws():
    from diffusion_lab.classifiers.sequential import stage_plan

    assert stage_plan(8, 2, True, False, 1) == [2, 1, 1, 1, 1, 1, 1]
    assert stage_plan(8, 2, True, False, None) == [2, 2, 2, 2]
    assert stage_plan(9, 2, True, False, 3) == [2, 3, 3, 1]
    assert stage_plan(8, 2, False, False, 1) == [8] and stage_plan(8, 2, False, True, 1) == [2, 6]


def test_sequential_rule_with_single_draw_stages_stops_at_any_draw_count_and_keeps_the_argmax():
    scores, exact = _sequential_on_two_context_free_classes(first_stage_draws=2, stage_draws=1)
    assert torch.equal(scores.log_lik.argmax(1), exact.argmax(1))
    draws = scores.draws.max(1).values
    assert (draws >= 2).all() and (draws < 64).any()
    assert (draws % 2 == 1).any()  # stopped after an odd number of draws: a stage of one draw decided it


def test_per_item_pruning_never_drops_the_true_best_class():
    tables = _tables(4, seed=2, spread=1.5)
    clf = per_class_clf(tables)
    x = torch.cat([_sample(tables[c], 5, 30, 10 + c) for c in range(4)])
    exact = torch.stack([t[x].sum(1) for t in tables], 1).double()
    best = exact.argmax(1)
    scores = class_log_likelihoods(clf, x, torch.ones_like(x), num_draws=16, adaptive=True, first_stage_draws=4,
                                   margin=3.0, generator=torch.Generator().manual_seed(0))
    rows = torch.arange(len(x))
    # the best class of every item is never pruned: it gets every draw that item gets (an item whose
    # other classes are all pruned stops early: nothing is left to decide)
    assert (scores.draws[rows, best] == scores.draws.max(1).values).all()
    assert (scores.draws < 16).any() and scores.forward_passes < 16 * 4
    assert torch.equal(scores.log_lik.argmax(1), best)
    # items favour different classes: a class pruned for one item is still scored for another
    lagging = scores.draws < scores.draws.max(1, keepdim=True).values
    assert (lagging.any(0) & (scores.draws == 16).any(0)).any()


def _windowed_batch():
    """Doc 0: two windows (the second sees 3 overlap tokens as context); doc 1: one window."""
    g = torch.Generator().manual_seed(7)
    ids = torch.randint(0, MASK, (3, 10), generator=g)
    att = torch.ones_like(ids)
    att[2, 8:] = 0
    score_mask = att.bool().clone()
    score_mask[1, :3] = False
    return {"input_ids": ids, "attention_mask": att, "score_mask": score_mask,
            "doc_ids": torch.tensor([4, 4, 5]), "labels": torch.tensor([1, 1, 0])}


def test_documents_sum_their_windows_and_overlap_is_never_scored():
    tables = _tables(2, seed=3, spread=2.0)
    clf = per_class_clf(tables)
    b = _windowed_batch()
    scores = class_log_likelihoods(clf, b["input_ids"], b["attention_mask"], num_draws=3000,
                                   score_mask=b["score_mask"], doc_ids=b["doc_ids"],
                                   generator=torch.Generator().manual_seed(0))
    per_window = torch.stack([(t[b["input_ids"]] * b["score_mask"]).sum(1) for t in tables], 1).double()
    exact = torch.stack([per_window[0] + per_window[1], per_window[2]])
    assert scores.log_lik.shape == (2, 2)
    assert torch.allclose(scores.log_lik, exact, rtol=0.03)
    assert (scores.token_scores[~b["score_mask"][:, None, :].expand(-1, 2, -1)] == 0).all()
    assert scores.passes.tolist() == [2 * 3000 * 2, 3000 * 2]  # two windows, then one


def test_predict_gives_one_row_per_document_for_every_readout():
    from diffusion_lab.classifiers.predict import predict

    class Disc(torch.nn.Module):  # window logits = its first token (as a float), both classes
        device = torch.device("cpu")
        readouts = ("discriminative",)  # what predict reads to score it as a discriminative model

        def log_joint(self, ids, att):
            return torch.stack([ids[:, 0].double(), -ids[:, 0].double()], 1), None

    b = _windowed_batch()
    p = predict(Disc(), [b])
    n = b["score_mask"].sum(1).double()
    z = b["input_ids"][:, 0].double()
    assert p.log_joint.shape == (2, 2) and p.labels.tolist() == [1, 0]
    assert p.log_joint[0, 0].item() == pytest.approx(float((n[:2] * z[:2]).sum() / n[:2].sum()))
    assert p.passes.tolist() == [2.0, 1.0]


def _context_free_classifier_on_validation(spread: float, per_class: int, num_classes: int = 2, **hparams):
    """A per-class classifier of context-free tables and a data module that serves validation only."""
    from diffusion_lab.classifiers.generative import GenerativeClassifier

    tables = _tables(num_classes, seed=4, spread=spread)

    class TableLM(torch.nn.Module):
        def __init__(self, t):
            super().__init__()
            self.backbone = TableBackbone(t)

    clf = GenerativeClassifier([TableLM(t) for t in tables], "per_class", num_classes,
                               [-math.log(num_classes)] * num_classes, MASK, optimizer=None, **hparams).eval()
    x = torch.cat([_sample(t, per_class, 12, c) for c, t in enumerate(tables)])
    batch = {"input_ids": x, "attention_mask": torch.ones_like(x),
             "labels": torch.arange(num_classes).repeat_interleave(per_class)}

    class ValidationOnly:
        def dataloader(self, split):
            if split != "validation":
                raise AssertionError(f"a validation-only choice read the {split} split")
            return [batch]

    return clf, ValidationOnly()


def test_num_draws_auto_reads_validation_only():
    from diffusion_lab.classifiers.draws import choose_num_draws

    clf, validation = _context_free_classifier_on_validation(1.0, 8)
    k, table = choose_num_draws(clf, validation, [1, 2, 4, 8], tolerance=0.05)
    assert k in table and set(table) == {1, 2, 4, 8}
    assert table[k] <= table[8] + 0.05 and all(table[j] > table[8] + 0.05 for j in table if j < k)


def test_stop_z_auto_reads_validation_only_and_picks_the_smallest_agreeing_threshold():
    from diffusion_lab.classifiers.draws import choose_stop_z

    clf, validation = _context_free_classifier_on_validation(0.3, 16, stage_draws=2)
    z, table = choose_stop_z(clf, validation, 8, [0.5, 1.0, 2.0, 3.0], max_accuracy_drop=0.05)
    assert set(table) == {"fixed", 0.5, 1.0, 2.0, 3.0} and table["fixed"]["passes"] == 16  # 8 draws x 2 classes
    bar = table["fixed"]["accuracy"] - 0.05
    assert table[z]["accuracy"] >= bar and all(table[s]["accuracy"] < bar for s in (0.5, 1.0, 2.0, 3.0) if s < z)
    assert table[0.5]["passes"] <= table[3.0]["passes"] < 16  # a lower threshold stops earlier
    assert table["fixed"]["agreement"] == 1.0


def test_stage_draws_auto_takes_the_fewest_passes_at_one_bar_for_all_sizes():
    from diffusion_lab.classifiers.draws import choose_stages, choose_stop_z

    zs = [0.5, 1.0, 2.0, 3.0]
    clf, validation = _context_free_classifier_on_validation(0.3, 16)
    size, z, per_size, bar = choose_stages(clf, validation, 8, [2, 1], zs)
    for s in (2, 1):  # each size scored on its own plan, the same as choose_stop_z at that size
        assert per_size[s]["table"] == choose_stop_z(clf, validation, 8, zs, stage_draws=s)[1]
    assert per_size[1]["table"] != per_size[2]["table"]
    assert bar == max(per_size[s]["table"]["fixed"]["accuracy"] for s in (2, 1))  # ONE bar, the best all-8 row
    meets = [per_size[s]["table"][q]["passes"] for s in (2, 1) for q in zs if per_size[s]["table"][q]["accuracy"] >= bar]
    assert meets and per_size[size]["table"][z]["passes"] == min(meets)
    assert per_size[size]["table"][z]["accuracy"] >= bar
    with pytest.raises(ValueError, match="auto_stage_draws"):
        choose_stages(clf, validation, 8, [0], zs)


@pytest.mark.parametrize("num_classes", [2, 3])
def test_stop_z_replay_equals_a_live_sequential_run_draw_for_draw(num_classes):
    """choose_stop_z scores once and replays the rule per z: on one document per run (so the generator
    stream is the same) the replay gives the live run's estimate and passes exactly, pruning included."""
    from diffusion_lab.classifiers.predict import predict
    from diffusion_lab.classifiers.sequential import replay_stages, stage_plan

    clf, validation = _context_free_classifier_on_validation(0.3, 6, num_classes, stage_draws=2, prune_margin=1.0)
    prune_z = 1.0 if num_classes > 2 else None
    batch = validation.dataloader("validation")[0]
    plan = stage_plan(8, 2, True, prune_z is not None, 2)
    early = pruned = 0
    for i in range(len(batch["labels"])):
        one = [{k: v[i:i + 1] for k, v in batch.items()}]
        recorded = predict(clf, one, seed=3, num_draws=8, sequential=True, stop_z=float("inf"), keep_draws=True)
        assert recorded.draw_values.shape == (1, 8, num_classes)
        pruned += int(recorded.draw_values.isnan().any())
        for z in (0.5, 2.0):
            live = predict(clf, one, seed=3, num_draws=8, sequential=True, stop_z=z)
            log_lik, entries = replay_stages(recorded.draw_values, plan, clf.log_prior, prune_z, z)
            assert torch.allclose(log_lik + clf.log_prior, live.log_joint)
            assert entries.double().tolist() == live.passes.tolist()  # one window: a pass per (draw, class)
            early += int(live.passes.item() < recorded.passes.item())
    assert early > 0  # the rule did stop somewhere, so the replay was tested on truncated draws
    assert pruned > 0 if num_classes > 2 else pruned == 0


def test_stop_z_auto_is_chosen_recorded_and_reloaded(tiny_run):
    from diffusion_lab.classifiers.build import load_classifier_run

    results, out = tiny_run(["task=train_classifier", "task.val_draws=1", "classifier.num_draws=4", "task.baselines=[]",
                             "classifier.sequential=true", "classifier.stop_z=auto", "classifier.auto_stop_z=[1.0,3.0]",
                             "eval.max_test=16"], "auto_z")
    chosen = results["stop_z_chosen"]
    assert chosen in (1.0, 3.0) and set(results["auto_stop_z"]) == {"fixed", "1.0", "3.0"}
    assert results["auto_stop_z"]["fixed"]["passes"] == 8  # 4 draws x 2 classes, one window each
    _, _, clf, _ = load_classifier_run(out)
    assert clf.hparams.stop_z == chosen  # the checkpoint says auto; results.json says what was chosen


def test_stage_draws_auto_is_chosen_recorded_and_reloaded(tiny_run):
    from diffusion_lab.classifiers.build import load_classifier_run

    results, out = tiny_run(["task=train_classifier", "task.val_draws=1", "classifier.num_draws=4", "task.baselines=[]",
                             "classifier.sequential=true", "classifier.stop_z=2.0", "classifier.stage_draws=auto",
                             "classifier.auto_stage_draws=[2,1]", "eval.max_test=16"], "auto_stage")
    tables = results["auto_stage_draws"]
    assert set(tables) == {"accuracy_bar", "2", "1"} and results["stop_z_chosen"] == 2.0  # z fixed, size chosen
    chosen = results["stage_draws_chosen"]
    assert chosen in (2, 1) and results["auto_stop_z"] == tables[str(chosen)]["table"]
    _, _, clf, _ = load_classifier_run(out)
    assert clf.hparams.stage_draws == chosen  # the checkpoint says auto; results.json says what was chosen
