"""The label-infill loss term trains the one-pass readout; the hybrid readout falls back to Bayes draws."""

import math

import pytest
import torch

# 48-token windows hold the synthetic reviews' sentiment words (16 often cut them off); 1,500 steps at lr 1e-3
# with the term at 0.9 of the loss and the text of label-masked rows visible (the readout's layout).
# Measured on this config (issue 13), infill accuracy on the 120 test items over seeds 0-4:
#   infill_text=visible 0.95 / 0.75 / 1.00 / 1.00 / 1.00; noised 0.96 / 0.50 / 0.50 / 0.96 / 0.50
# (noised stays on the plateau where the slot's state ignores the text in 3 of 5 seeds); 6 epochs: 1 of 5.
CLF = ["task=train_classifier", "task.val_draws=1", "classifier.num_draws=2", "task.baselines=[]",
       "dataset.num_train=600", "dataset.num_test=120", "eval.max_test=null", "trainer.max_epochs=40",
       "data.max_length=48", "tokenizer.vocab_size=600", "optimizer.lr=1e-3",
       "classifier.infill_weight=0.9", "classifier.infill_mask_prob=0.5", "classifier.infill_text=visible",
       "model.backbone.hidden_size=64", "model.backbone.num_hidden_layers=2", "model.backbone.intermediate_size=128"]


@pytest.mark.slow
def test_infill_term_trains_the_label_readout_above_chance_and_hybrid_mixes_readouts(tiny_run):
    from diffusion_lab.classifiers.build import load_classifier_run
    from diffusion_lab.classifiers.predict import predict
    from diffusion_lab.evaluation.models import RunModels

    results, out = tiny_run(CLF, "infill")
    infill = results["models"]["generative_infill"]
    n = infill["n"]
    assert n == 120 and infill["forward_passes_per_example"] == 1
    hybrid, bayes_passes = results["models"]["generative_hybrid"], results["models"]["generative"]["forward_passes_per_example"]
    assert hybrid["n"] == n and 1 <= hybrid["forward_passes_per_example"] <= 1 + bayes_passes  # one pass + draws where unsure
    assert "generative_hybrid" in results["mcnemar_p"]
    metrics = next(out.rglob("metrics.csv")).read_text()
    assert "train/label_infill_nll" in metrics  # the infill term ran

    _, tokenizer, clf, baselines = load_classifier_run(out)
    models = RunModels(clf, baselines, tokenizer, 16, batch_size=32, num_draws=2)
    ids = models.encode(["a great wonderful film", "a dull awful film", "film"] * 4)
    batches = list(models.batch_dicts(ids))
    sure = predict(clf, batches, readout="hybrid", hybrid_threshold=0.0)  # always sure: infill only
    never = predict(clf, batches, readout="hybrid", hybrid_threshold=1.01, num_draws=2)  # never: Bayes too
    infill_only = predict(clf, batches, readout="infill")
    bayes = predict(clf, batches, num_draws=2)
    assert torch.allclose(sure.log_joint, infill_only.log_joint) and sure.forward_passes_per_example == 1
    assert torch.allclose(never.log_joint, bayes.log_joint)
    assert never.forward_passes_per_example == 1 + bayes.forward_passes_per_example
    assert infill["accuracy"] > 0.5 + 3 * math.sqrt(0.25 / n)  # > chance + 3 standard errors


@pytest.mark.parametrize("infill_text", ["noised", "visible"])
def test_infill_rows_hide_the_label_and_train_on_the_scoring_layout(tmp_path, infill_text):
    """Label-masked training rows: slot 0 holds the mask token and the condition is ``<nolabel>`` (the label
    reaches the model nowhere); the readout scores that same layout; the term's targets are the label ids.
    ``visible``: those rows' text is the clean text and no text position is predicted there."""
    from diffusion_lab.builders import build_datamodule
    from diffusion_lab.classifiers.build import build_generative
    from diffusion_lab.classifiers.scoring import infill_label_probs
    from tests.conftest import TINY, compose

    cfg = compose([*TINY, "task=train_classifier", "classifier.infill_weight=0.5", "classifier.infill_mask_prob=0.5",
                   "classifier.uncond_prob=0.0",
                   f"classifier.infill_text={infill_text}"], tmp_path)
    dm = build_datamodule(cfg, cache_dir=tmp_path)
    dm.setup()
    clf = build_generative(cfg, dm.tokenizer, dm.num_classes, [math.log(0.5)] * 2)
    backbone, no_label = clf.lms[0].backbone, clf.lms[0].backbone.num_conditions - 1
    assert len(set(clf.label_token_ids)) == 2 and not set(clf.label_token_ids) & set(backbone.suppress_ids.tolist())
    seen = {}
    backbone.register_forward_pre_hook(lambda m, args, kw: seen.update(x=args[0], att=args[1], **kw), with_kwargs=True)
    batch = next(iter(dm.train_dataloader()))
    labels = batch["labels"]
    loss = clf.layout.generative_loss(clf, batch["input_ids"], batch["attention_mask"], labels)
    assert torch.isfinite(loss)
    x, att, cond = seen["x"], seen["att"], seen["condition"]
    hidden = x[:, 0] == clf.mask_token_id
    assert hidden.any() and (~hidden).any()
    assert (cond[hidden] == no_label).all() and (cond[~hidden] == labels[~hidden]).all()
    label_ids = torch.tensor(clf.label_token_ids)
    assert (x[~hidden, 0] == label_ids[labels[~hidden]]).all() and seen["positions"][:, 0].equal(hidden)
    clean, text_predicted = x[hidden, 1:] == batch["input_ids"][hidden], seen["positions"][hidden, 1:].any(1)
    if infill_text == "visible":
        assert clean.all() and not text_predicted.any()
    else:  # the schedule masks their text like any other row's
        assert not clean.all() and text_predicted.any()
    with torch.no_grad():  # the readout on the same text sees exactly what the training rows saw
        trained = torch.log_softmax(backbone(x, att, condition=cond)[hidden, 0][:, label_ids].double(), -1)
        scored = infill_label_probs(clf, x[hidden, 1:], att[hidden, 1:]).log()
    assert torch.allclose(trained, scored, atol=1e-5)


def test_unknown_infill_text_is_a_clear_error(tmp_path):
    from diffusion_lab.builders import build_datamodule
    from diffusion_lab.classifiers.build import build_generative
    from tests.conftest import TINY, compose

    cfg = compose([*TINY, "task=train_classifier", "classifier.infill_text=hidden"], tmp_path)
    dm = build_datamodule(cfg, cache_dir=tmp_path)
    dm.setup()
    with pytest.raises(ValueError, match="classifier.infill_text='hidden'.*noised, visible"):
        build_generative(cfg, dm.tokenizer, dm.num_classes, [math.log(0.5)] * 2)
