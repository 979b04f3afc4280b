"""The ``tfidf_lr`` baseline: TF-IDF (1-2 grams, sublinear tf) + logistic regression, C chosen on validation."""

from __future__ import annotations

import time

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss


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
