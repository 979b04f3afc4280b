"""The ``tfidf_lr`` baseline: TF-IDF (1-2 grams, sublinear tf) + logistic regression, C chosen on validation.

Saved as plain arrays (``tfidf_lr.npz``: vocabulary, idf, coefficients, intercepts, classes, and the settings
as JSON text), loaded with ``allow_pickle=False``: a run directory someone shares can never run code here,
which a pickled (joblib) model could.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss

from diffusion_lab.classifiers.predict import Predictions


class TfidfLogReg:
    """Fit on train, choose ``C`` from ``c_grid`` by validation log-loss, refit nothing (same train)."""

    def __init__(self, c_grid=(0.25, 1.0, 4.0, 16.0), max_features: int = 200_000, seed: int = 0):
        self.c_grid, self.max_features, self.seed = list(c_grid), max_features, seed
        self.vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=2, max_features=max_features)
        self.model: LogisticRegression | None = None
        self.chosen_c: float | None = None
        self.validation_log_loss: dict[float, float] = {}

    def fit(self, train_texts, train_labels, val_texts, val_labels):
        x_train = self.vectorizer.fit_transform(train_texts)
        x_val = self.vectorizer.transform(val_texts)
        labels = sorted(set(train_labels))
        best = None
        for c in self.c_grid:
            model = LogisticRegression(C=c, max_iter=2000, random_state=self.seed).fit(x_train, train_labels)
            loss = log_loss(val_labels, model.predict_proba(x_val), labels=labels)
            self.validation_log_loss[c] = float(loss)
            if best is None or loss < best[0]:
                best = (loss, c, model)
        _, self.chosen_c, self.model = best
        return self

    def save(self, path: Path) -> Path:
        """Write the fitted model as plain arrays (no pickle) to ``path`` (``.npz``)."""
        vocab = self.vectorizer.vocabulary_
        terms = np.array(sorted(vocab, key=vocab.__getitem__), dtype=np.str_)
        settings = {"c_grid": self.c_grid, "max_features": self.max_features, "seed": self.seed,
                    "chosen_c": self.chosen_c, "validation_log_loss": {str(c): v for c, v in self.validation_log_loss.items()},
                    "ngram_range": list(self.vectorizer.ngram_range), "sublinear_tf": self.vectorizer.sublinear_tf,
                    "min_df": self.vectorizer.min_df}
        with open(path, "wb") as f:  # a file object: np.savez would otherwise append .npz to the name
            np.savez(f, terms=terms, idf=self.vectorizer.idf_, coef=self.model.coef_, intercept=self.model.intercept_,
                     classes=np.asarray(self.model.classes_), settings=np.array(json.dumps(settings)))
        return Path(path)

    @classmethod
    def load(cls, path: Path) -> TfidfLogReg:
        """The model ``save`` wrote; any pickled object in the file is refused (``allow_pickle=False``)."""
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {k: data[k] for k in ("terms", "idf", "coef", "intercept", "classes", "settings")}
        except ValueError as err:  # object arrays: the only way a pickle gets into an .npz
            raise ValueError(f"{path} refused: it holds pickled objects ({err}), which could run code when "
                             "loaded; only plain arrays are read. Retrain the run's tfidf_lr baseline") from None
        except (KeyError, OSError) as err:
            raise ValueError(f"{path} is not a tfidf_lr model file ({err}); retrain the baseline") from None
        settings = json.loads(str(arrays["settings"]))
        self = cls(settings["c_grid"], settings["max_features"], settings["seed"])
        self.vectorizer.set_params(ngram_range=tuple(settings["ngram_range"]), sublinear_tf=settings["sublinear_tf"],
                                   min_df=settings["min_df"])
        self.vectorizer.vocabulary_ = {str(t): i for i, t in enumerate(arrays["terms"])}
        self.vectorizer.idf_ = arrays["idf"]
        model = LogisticRegression(C=settings["chosen_c"], max_iter=2000, random_state=settings["seed"])
        model.coef_, model.intercept_, model.classes_ = arrays["coef"], arrays["intercept"], arrays["classes"]
        model.n_features_in_ = arrays["coef"].shape[1]
        self.model, self.chosen_c = model, settings["chosen_c"]
        self.validation_log_loss = {float(c): v for c, v in settings["validation_log_loss"].items()}
        return self

    def log_probs(self, texts) -> tuple[np.ndarray, float]:
        """Log class probabilities ``[N, C]`` and examples per second."""
        start = time.perf_counter()
        probs = self.model.predict_proba(self.vectorizer.transform(texts))
        rate = len(texts) / max(time.perf_counter() - start, 1e-9)
        return np.log(np.clip(probs, 1e-12, 1.0)), rate

    def word_weights(self) -> dict[str, float]:
        """Unigram weights (binary: the positive-class coefficient), for adversarial word masking."""
        names = self.vectorizer.get_feature_names_out()
        coef = self.model.coef_[0] if self.model.coef_.shape[0] == 1 else np.abs(self.model.coef_).max(0)
        return {w: float(c) for w, c in zip(names, coef, strict=True) if " " not in w}


def reads_full_text(cfg, dm) -> bool:
    """TF-IDF reads whole documents with ``task.tfidf_full_text`` or whenever the models read every window."""
    return bool(cfg.task.get("tfidf_full_text", False) or dm.long_text == "windows")


def tfidf_predictions(tfidf: TfidfLogReg, dm, split: str, full_text: bool) -> Predictions:
    """The baseline's ``Predictions`` on ``split`` of ``dm`` (its texts, or the models' token windows)."""
    log_probs, rate = tfidf.log_probs(dm.split_texts(split, window=not full_text))
    labels = [int(x) for x in dm.datasets[split]["label"]]
    return Predictions(torch.tensor(log_probs, dtype=torch.float64), torch.tensor(labels), rate, 0.0)
