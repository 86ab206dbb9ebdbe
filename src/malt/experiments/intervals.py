"""A study's test runs compared in pairs: each difference with its bootstrap interval over the
test users and the seeds (see `malt.bootstrap`), and the verdict it supports."""

from __future__ import annotations

from collections.abc import Sequence

from malt.eval.compare import Comparison, compare
from malt.eval.options import DEFAULT_RESAMPLES
from malt.eval.predictions import Predictions
from malt.experiments.study import Study, Variant
from malt.runs.directory import RunDir

METRICS = ("auc", "gauc")


def interval_note(seeds: int) -> str:
    """What the Δ cells with an interval show, for a study of `seeds` seeds."""
    over = "the test users and the seeds" if seeds > 1 else \
        "the test users (one seed: the training randomness is not in it)"
    return (f"Δ cells with an interval: the mean difference over seeds in points and its 95 % "
            f"interval from a paired bootstrap over {over}; † where the interval excludes 0.")


def paired_predictions(study: Study, variant: Variant | None, reference: Variant | None,
                       split: str = "test", seeds: Sequence[int] | None = None
                       ) -> tuple[list[Predictions], list[Predictions]] | None:
    """The predictions on `split` of `variant` and of `reference`, seed by seed, over the
    `seeds` (the study's by default) where both runs finished with their predictions (None
    when no seed did)."""
    if variant is None or reference is None:
        return None
    pairs = [(RunDir(study.run_dir(variant, s, split)), RunDir(study.run_dir(reference, s, split)))
             for s in (study.seeds if seeds is None else seeds)]
    done = [(a, b) for a, b in pairs if all(r.is_complete() and r.predictions_file.is_file()
                                            for r in (a, b))]
    if not done:
        return None
    return ([Predictions.load(a.predictions_file) for a, _ in done],
            [Predictions.load(b.predictions_file) for _, b in done])


def paired_test(study: Study, variant: Variant | None, reference: Variant | None,
                view: str, split: str = "test", seeds: Sequence[int] | None = None,
                metrics: Sequence[str] = METRICS) -> Comparison | None:
    """`variant` − `reference` on `view` of `split` (see `paired_predictions`)."""
    paired = paired_predictions(study, variant, reference, split, seeds)
    if paired is None:
        return None
    return compare(*paired, view, metrics=tuple(metrics), resamples=DEFAULT_RESAMPLES, seed=0)


def verdict_line(name: str, reference: str, view: str, comparison: Comparison) -> str:
    """'MoAE vs BASE on Last-Click (3 seeds): ΔAUC +0.52 [+0.31, +0.74], ΔGAUC ...: better'."""
    deltas = comparison.deltas
    seeds = next(iter(deltas.values())).seeds
    figures = ", ".join(f"Δ{title} {deltas[k].points()}" for k, title in
                        (("auc", "AUC"), ("gauc", "GAUC")) if k in deltas)
    return (f"{name} vs {reference} on {view} ({seeds} seed{'s' if seeds > 1 else ''}): "
            f"{figures}: {comparison.verdict}")
