"""lr × λ grid search with fake evaluators (no training): the one-standard-error rule on
synthetic validation scores of known noise, flagged runs, seeds for the leaders."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from malt.experiments.presets import paper_lrs
from malt.experiments.search import (
    LEADING,
    Setting,
    ValidationRun,
    constant_logloss,
    grid,
    one_se_choice,
    run_flag,
    search,
)


def test_grid_is_every_pair_in_order_and_collapses_lambda_without_aux():
    settings = grid([1e-3, 3e-3], [0.1, None])
    assert settings == [Setting(1e-3, 0.1), Setting(1e-3, None), Setting(3e-3, 0.1),
                        Setting(3e-3, None)]
    assert grid([1e-3, 3e-3, 1e-3], [0.1, 0.2], uses_aux=False) == [Setting(1e-3),
                                                                   Setting(3e-3)]
    with pytest.raises(ValueError):
        grid([], [0.1])


def test_the_label_mode_is_a_dimension_of_the_grid_for_runs_with_auxiliary_views():
    settings = grid([1e-3], [0.1, 0.3], label_modes=["binary", "weighted"])
    assert settings == [Setting(1e-3, 0.1, "binary"), Setting(1e-3, 0.1, "weighted"),
                        Setting(1e-3, 0.3, "binary"), Setting(1e-3, 0.3, "weighted")]
    assert grid([1e-3], [0.1], uses_aux=False, label_modes=["weighted"]) == [Setting(1e-3)]
    assert Setting(1e-3, 0.1, "weighted").label == "lr 0.001, λ 0.1, weighted labels"
    assert Setting(1e-3, 0.1).label == "lr 0.001, λ 0.1"


def test_within_one_se_binarised_labels_win_over_weighted_ones():
    binary, weighted = Setting(1e-3, 0.1, "binary"), Setting(1e-3, 0.1, "weighted")
    assert one_se_choice({weighted: [0.70, 0.71], binary: [0.70, 0.705]}).setting == binary
    # Beyond the noise the weighted labels keep their gain.
    assert one_se_choice({weighted: [0.75, 0.751], binary: [0.70, 0.701]}).setting == weighted


def test_paper_learning_rates():
    assert paper_lrs() == (3e-4, 3.5e-4, 4e-4, 3e-3, 3.5e-3, 4e-3, 3e-2, 3.5e-2, 4e-2)


# --- the one-standard-error rule -----------------------------------------------------------------
def test_one_seed_takes_the_best_and_exact_ties_go_to_the_conservative_setting():
    a, b, c = Setting(1e-2, 0.3), Setting(1e-3, 0.3), Setting(1e-2, 0.1)
    choice = one_se_choice({a: [0.7], b: [0.6], c: [0.65]})
    assert choice.setting == choice.best == a and choice.se is None and choice.tied == (a,)
    tie = one_se_choice({a: [0.7], b: [0.7], c: [math.nan]})
    assert tie.setting == b and tie.best == a and set(tie.means) == {a, b}
    assert one_se_choice({a: [math.nan]}).setting is None


def test_within_one_se_the_smallest_lambda_then_lr_wins():
    big, small_lr, small_weight, far = (Setting(1e-2, 0.3), Setting(1e-3, 0.3),
                                        Setting(1e-2, 0.1), Setting(1e-4, 0.0))
    # best mean 0.70, se = sample std / √4 ≈ 0.0115; 0.695 is within, 0.65 is not
    scores = {big: [0.68, 0.72, 0.68, 0.72], small_lr: [0.695] * 4,
              small_weight: [0.695] * 4, far: [0.65] * 4}
    choice = one_se_choice(scores)
    assert choice.best == big and choice.se == pytest.approx(0.02 * math.sqrt(4 / 3) / 2)
    assert choice.tied == (small_weight, small_lr, big)
    assert choice.setting == small_weight
    # the reference λ (None) counts as its value in the conservative order
    ref = Setting(1e-2, None)
    assert one_se_choice({big: scores[big], ref: [0.695] * 4},
                         reference_weight=0.05).setting == ref
    assert one_se_choice({big: scores[big], ref: [0.695] * 4},
                         reference_weight=0.5).setting == big


def draw_scores(rng, truth: dict[Setting, float], noise: float, seeds: int):
    return {s: list(t + noise * rng.standard_normal(seeds)) for s, t in truth.items()}


def test_on_scores_of_known_noise_the_rule_prefers_the_conservative_of_equals():
    """Two settings equally good in truth, a third clearly worse: with seed noise 0.01 over 5
    seeds, argmax picks the aggressive one half of the time, the rule only when the difference
    of the two means (sd 0.01·√(2/5)) exceeds one se (0.01/√5): P(Z > 1/√2) ≈ 0.24; the worse
    one (λ 0, the most conservative, but ~7 se below) is never selected."""
    rng = np.random.default_rng(0)
    aggressive, conservative, worse = Setting(1e-2, 0.3), Setting(1e-3, 0.1), Setting(1e-2, 0.0)
    truth = {aggressive: 0.70, conservative: 0.70, worse: 0.67}
    picks = [one_se_choice(draw_scores(rng, truth, 0.01, 5)) for _ in range(400)]
    by_rule = sum(c.setting == aggressive for c in picks) / len(picks)
    by_argmax = sum(c.best == aggressive for c in picks) / len(picks)
    assert 0.4 < by_argmax < 0.6
    assert 0.15 < by_rule < 0.33
    assert not any(c.setting == worse for c in picks)


def test_on_scores_of_known_noise_a_real_gain_beyond_the_noise_is_kept():
    """A gain of 4 standard errors is not given up for conservatism."""
    rng = np.random.default_rng(1)
    better, conservative = Setting(1e-2, 0.3), Setting(1e-3, 0.1)
    truth = {better: 0.70 + 4 * 0.01 / math.sqrt(6), conservative: 0.70}
    picks = [one_se_choice(draw_scores(rng, truth, 0.01, 6)).setting for _ in range(400)]
    assert sum(p == better for p in picks) / len(picks) > 0.9


def test_the_rule_cuts_selection_regret_on_noisy_flat_grids():
    """Nine settings, the truth flat but for one bad corner; the rule's regret (true score of
    the best minus true score of the chosen) is no worse than argmax's, and it picks the
    conservative corner more often."""
    rng = np.random.default_rng(2)
    settings = grid([1e-3, 3e-3, 1e-2], [0.1, 0.3, 1.0])
    truth = {s: 0.70 - (0.01 if s == Setting(1e-2, 1.0) else 0.0) for s in settings}
    regret_rule, regret_max = [], []
    for _ in range(300):
        choice = one_se_choice(draw_scores(rng, truth, 0.01, 3))
        regret_rule.append(max(truth.values()) - truth[choice.setting])
        regret_max.append(max(truth.values()) - truth[choice.best])
    assert np.mean(regret_rule) <= np.mean(regret_max)


# --- the search --------------------------------------------------------------------------------
def run(value: float, logloss: float = 0.3, constant: float = 0.5) -> ValidationRun:
    return ValidationRun(auc=value + 0.1, gauc=value, logloss=logloss, constant_logloss=constant)


def fake_score(problem, setting: Setting) -> float:
    """Best lr 3e-3 for every problem; λ 0.2 best for problem 'x', 0.4 for 'y'."""
    target = {"x": 0.2, "y": 0.4}[problem]
    weight = 0.0 if setting.aux_weight is None else setting.aux_weight
    return 0.8 - abs(math.log10(setting.lr / 3e-3)) - abs(weight - target)


def test_search_selects_per_problem_in_one_batch():
    space = grid([3e-4, 3e-3, 3e-2], [0.1, 0.2, 0.3, 0.4])
    calls = []

    def evaluate(batch):
        calls.append(list(batch))
        return [run(fake_score(key, s)) for key, s, _ in batch]

    results = search({"x": space, "y": space, "z": [Setting(1e-2, None)]}, evaluate)
    assert len(calls) == 1 and len(calls[0]) == 2 * len(space)
    assert results["x"].setting == Setting(3e-3, 0.2)
    assert results["y"].setting == Setting(3e-3, 0.4)
    assert results["x"].runs[Setting(3e-3, 0.2)][0].gauc == pytest.approx(0.8)
    # a grid of one setting is selected without any run
    assert results["z"].setting == Setting(1e-2, None) and results["z"].runs == {}


def test_the_leaders_are_rerun_on_every_seed_and_chosen_on_their_mean():
    space = grid([1e-3, 3e-3, 1e-2, 3e-2], [0.1, 0.3])
    calls = []
    # seed 0 flatters lr 3e-2 (λ 0.3); its other seeds are poor; lr 1e-2 is steady
    first = {s: 0.70 + 0.01 * i for i, s in enumerate(space)}
    later = {s: 0.70 + 0.01 * i for i, s in enumerate(space)} | {Setting(3e-2, 0.3): 0.60}

    def evaluate(batch):
        calls.append(list(batch))
        return [run(first[s] if i == 0 else later[s] + 0.001 * i) for _, s, i in batch]

    result = search({"p": space}, evaluate, seeds=3)["p"]
    assert [len(c) for c in calls] == [len(space), 2 * len(set(s for _, s, _ in calls[1]))]
    rerun = {s for _, s, _ in calls[1]}
    assert LEADING <= len(rerun) <= 3 * LEADING and Setting(3e-2, 0.3) in rerun
    assert {i for *_, i in calls[1]} == {1, 2}
    assert all(len(result.runs[s]) == (3 if s in rerun else 1) for s in space)
    # on the mean over three seeds, lr 3e-2 λ 0.3 drops below lr 3e-2 λ 0.1
    assert result.choices["gauc"].best == Setting(3e-2, 0.1)
    assert result.choices["gauc"].se is not None
    assert "se over 3 seeds" in result.uncertainty()


def test_failed_diverged_and_worse_than_constant_runs_are_flagged_and_never_selected():
    space = [Setting(1e-3, 0.1), Setting(3e-3, 0.1), Setting(1e-2, 0.1), Setting(3e-2, 0.1)]
    runs = {space[0]: run(0.60), space[1]: None, space[2]: run(0.9, logloss=math.nan),
            space[3]: run(0.95, logloss=0.6, constant=0.5)}
    result = search({"p": space}, lambda batch: [runs[s] for _, s, _ in batch])["p"]
    assert result.setting == space[0]
    assert [result.flag(s) for s in space] == ["", "failed", "diverged", "worse than constant"]
    assert "3 setting(s) flagged" in result.uncertainty()
    nothing = search({"p": space[1:]}, lambda batch: [runs[s] for _, s, _ in batch])["p"]
    assert nothing.setting is None and "no setting could be selected" in nothing.uncertainty()
    with pytest.raises(ValueError, match="runs"):
        search({"p": space}, lambda batch: [run(0.5)])


def test_the_criterion_is_a_choice_and_disagreements_are_said():
    a, b = Setting(1e-3, 0.1), Setting(1e-2, 0.1)
    # a has the better GAUC, b the better AUC and logloss
    runs = {a: ValidationRun(auc=0.70, gauc=0.66, logloss=0.40),
            b: ValidationRun(auc=0.75, gauc=0.62, logloss=0.35)}

    def evaluate(batch):
        return [runs[s] for _, s, _ in batch]

    by_gauc = search({"p": [a, b]}, evaluate)["p"]
    assert by_gauc.setting == a
    assert by_gauc.disagreements() == {"auc": b, "logloss": b}
    assert by_gauc.disagreement_text() == ("AUC would select lr 0.01, λ 0.1; logloss would "
                                           "select lr 0.01, λ 0.1")
    for metric in ("auc", "logloss"):
        chosen = search({"p": [a, b]}, evaluate, metric=metric)["p"]
        assert chosen.setting == b and chosen.disagreements() == {"gauc": a}


def test_constant_logloss_is_the_entropy_of_the_base_rate():
    assert constant_logloss(0.5) == pytest.approx(math.log(2))
    assert constant_logloss(0.1) == pytest.approx(-(0.1 * math.log(0.1) + 0.9 * math.log(0.9)))
    assert math.isnan(constant_logloss(0.0)) and math.isnan(constant_logloss(math.nan))
    # a NaN constant skips the check
    assert ValidationRun(0.7, 0.7, 5.0).flag == ""


@given(st.lists(st.one_of(st.none(), st.floats(0, 1)), min_size=2, max_size=12))
def test_one_seed_search_picks_an_argmax(scores):
    space = [Setting(1e-3 * (i + 1), 0.1) for i in range(len(scores))]
    result = search({"p": space},
                    lambda batch: [None if v is None else run(v) for v in scores])["p"]
    finite = [s for s in scores if s is not None]
    if not finite:
        assert result.setting is None
    else:  # an exact tie goes to the smaller lr, the first of them here
        best = space.index(result.setting)
        assert scores[best] == max(finite) and scores.index(max(finite)) == best


def test_the_empty_grid_and_rates_without_both_classes_are_refused():
    with pytest.raises(ValueError, match="^the search grid is empty$"):
        grid([], [0.1])
    assert math.isnan(constant_logloss(1.0))


def test_a_run_without_a_finite_criterion_is_flagged_for_that_criterion_only():
    no_auc = ValidationRun(auc=math.nan, gauc=0.7, logloss=0.3)
    assert run_flag(no_auc, "auc") == "no AUC"
    assert run_flag(no_auc, "gauc") == "" and run_flag(None, "gauc") == "failed"


def test_the_reference_lambda_is_ordered_by_each_problems_reference_weight():
    big, ref = Setting(1e-2, 0.3), Setting(1e-2, None)
    scores = {big: [0.68, 0.72], ref: [0.695, 0.695]}  # ref within one se of big's mean

    def evaluate(batch):
        return [run(scores[s][i]) for _, s, i in batch]

    problems = {"single": [Setting(1e-3, None)], "p": [big, ref]}
    default = search(problems, evaluate, seeds=2, metric="auc")
    assert default["p"].setting == ref  # the reference λ counts as 0 without a weight
    assert default["single"].metric == "auc" and default["single"].uncertainty() == ""
    assert search(problems, evaluate, seeds=2, reference_weights={"p": 0.05})["p"].setting == ref
    assert search(problems, evaluate, seeds=2, reference_weights={"p": 0.5})["p"].setting == big
    # the default of the rule itself: the reference λ counts as 0
    assert one_se_choice(scores).setting == ref
    assert one_se_choice(scores, reference_weight=1.0).setting == big
    empty = one_se_choice({big: [math.nan]})
    assert empty.means == {} and empty.tied == () and empty.best is None


def test_the_uncertainty_line_says_the_best_score_its_se_and_the_ties():
    a, b = Setting(1e-3, 0.1), Setting(1e-2, 0.1)
    one_seed = search({"p": [a, b]}, lambda batch: [run({a: 0.70, b: 0.60}[s])
                                                     for _, s, _ in batch])["p"]
    assert one_seed.uncertainty() == ("best GAUC 0.7000 (one seed: no standard error, the best "
                                      "score selected); no other of 2 candidates within one se")
    scores = {a: [0.70, 0.72], b: [0.705, 0.705]}
    tied = search({"p": [a, b]}, lambda batch: [run(scores[s][i]) for _, s, i in batch],
                  seeds=2)["p"]
    assert tied.uncertainty() == ("best GAUC 0.7100 ± 0.0100 (se over 2 seeds); 2 of 2 "
                                  "candidates within one se, the most conservative selected")
    losses = {a: 0.40, b: 0.35}
    by_logloss = search({"p": [a, b]}, lambda batch: [run(0.7, logloss=losses[s])
                                                       for _, s, _ in batch],
                        metric="logloss")["p"]
    assert by_logloss.uncertainty().startswith("best logloss 0.3500 (one seed")
    assert by_logloss.flag(Setting(9.0, 0.1)) == ""  # a setting the search never ran


def test_a_criterion_that_can_select_nothing_says_so():
    a, b = Setting(1e-3, 0.1), Setting(1e-2, 0.1)
    runs = {a: ValidationRun(auc=math.nan, gauc=0.7, logloss=0.3),
            b: ValidationRun(auc=math.nan, gauc=0.6, logloss=0.3)}
    result = search({"p": [a, b]}, lambda batch: [runs[s] for _, s, _ in batch])["p"]
    assert result.setting == a and result.disagreement_text() == "AUC would select nothing"


def test_flagged_settings_are_not_rerun_as_leaders():
    space = [Setting(1e-3 * (i + 1), 0.1) for i in range(LEADING + 2)]
    diverged = space[-1]
    calls = []

    def evaluate(batch):
        calls.append(list(batch))
        return [ValidationRun(auc=0.9, gauc=0.9, logloss=math.nan) if s == diverged
                else run(0.6 + 0.01 * space.index(s)) for _, s, _ in batch]

    search({"p": space}, evaluate, seeds=2)
    assert diverged not in {s for _, s, _ in calls[1]}
