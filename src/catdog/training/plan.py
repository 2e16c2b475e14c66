"""How a run trains, decided once from its config: the whole network on images, a head on
cached backbone features, or the backbone's top and a head on cached activations of its
frozen bottom; in one stage, or two when the top of the backbone is fine-tuned."""

from __future__ import annotations

from dataclasses import dataclass

from catdog.schema import RunConfig

IMAGES, FEATURES, ACTIVATIONS = "images", "features", "activations"


@dataclass(frozen=True)
class FitPlan:
    inputs: str  # IMAGES, FEATURES or ACTIVATIONS: what fit() is fed
    fine_tune_at: int | None  # the first backbone layer the second stage unfreezes; None: one stage
    pooled: bool  # the cache holds pooled features: an average-pooling head on a frozen backbone

    @property
    def cached(self) -> bool:
        return self.inputs != IMAGES


def fit_plan(cfg: RunConfig) -> FitPlan:
    """Only a frozen backbone with fixed weights gives the same features every time, so only
    such a variant trains on cached ones (`features.enabled` turns the cache off)."""
    backbone = cfg.model.backbone
    cut = backbone.fine_tune_at if backbone else None
    if not (cfg.features.enabled and backbone and not backbone.trainable and backbone.weights):
        return FitPlan(IMAGES, cut, pooled=False)
    if cut is None:
        return FitPlan(FEATURES, None, pooled=cfg.model.pooling == "avg")
    return FitPlan(ACTIVATIONS, cut, pooled=False)
