"""Model-independent metrics: classification numbers with intervals and paired tests, calibration."""

from diffusion_lab.metrics.calibration import (
    apply_bias_temperature,
    apply_temperature,
    fit_bias_temperature,
    fit_temperature,
    reliability_diagram,
)
from diffusion_lab.metrics.classification import (
    brier,
    classification_metrics,
    discordant_counts,
    mcnemar_pvalue,
    mcnemar_pvalue_from_counts,
    mean_ci95,
    nll,
    wilson_interval,
)

__all__ = [
    "apply_bias_temperature",
    "apply_temperature",
    "brier",
    "classification_metrics",
    "discordant_counts",
    "fit_bias_temperature",
    "fit_temperature",
    "mcnemar_pvalue",
    "mcnemar_pvalue_from_counts",
    "mean_ci95",
    "nll",
    "reliability_diagram",
    "wilson_interval",
]
