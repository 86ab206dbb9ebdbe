"""The loss contract: terms with weights and roles, combined as the module docstring says."""

from __future__ import annotations

import math

import pytest
import torch

from malt.losses.terms import LossTerm, LossTerms, view_terms


def _terms(*specs) -> LossTerms:
    """LossTerms from (name, value, weight, role) tuples."""
    return LossTerms(tuple(LossTerm(name, torch.tensor(value), weight, role)
                           for name, value, weight, role in specs))


# Values and weights with exact binary expansions: sums and products are exact in float32.
EXAMPLE = (("main", 1.5, 2.0, "main"), ("reg", 0.25, 1.0, "main"),
           ("first", 4.0, 0.5, "auxiliary"), ("rank", 8.0, 0.25, "auxiliary"))


def test_the_total_is_the_main_terms_plus_lambda_times_the_auxiliary_terms_each_weighted():
    terms = _terms(*EXAMPLE)
    main = 2.0 * 1.5 + 0.25
    aux = 0.5 * 4.0 + 0.25 * 8.0
    assert float(terms.total(0.5)) == main + 0.5 * aux
    assert float(terms.total(1.0)) == main + aux
    assert float(terms.main_loss()) == main


def test_lambda_zero_leaves_the_auxiliary_terms_out():
    # Left out, not multiplied by 0: a non-finite auxiliary loss cannot reach the total.
    terms = _terms(("main", 1.5, 1.0, "main"), ("first", math.nan, 1.0, "auxiliary"))
    assert float(terms.total(0.0)) == 1.5
    assert math.isnan(float(terms.total(0.5)))


def test_gradient_methods_get_the_main_task_then_each_auxiliary_term_without_lambda():
    terms = _terms(*EXAMPLE)
    assert [float(t) for t in terms.tasks()] == [2.0 * 1.5 + 0.25, 0.5 * 4.0, 0.25 * 8.0]


def test_a_model_without_auxiliary_terms_trains_its_main_terms():
    terms = _terms(("main", 1.5, 2.0, "main"))
    assert float(terms.total(0.3)) == 3.0
    assert [float(t) for t in terms.tasks()] == [3.0]


def test_every_term_is_logged_weighted_and_without_lambda():
    assert _terms(*EXAMPLE).logged() == {"main": 3.0, "reg": 0.25, "first": 2.0, "rank": 2.0}


def test_gradients_flow_through_the_weights():
    value = torch.tensor(3.0, requires_grad=True)
    aux = torch.tensor(5.0, requires_grad=True)
    terms = LossTerms((LossTerm("main", value, 0.5, "main"), LossTerm("aux", aux, 0.25)))
    terms.total(2.0).backward()
    assert float(value.grad) == 0.5 and float(aux.grad) == 2.0 * 0.25


def test_a_weight_of_one_is_the_value_itself():
    value = torch.tensor(2.0)
    assert LossTerm("main", value, 1.0, "main").weighted is value


def test_terms_of_views_make_the_main_view_the_main_task():
    losses = {"last": torch.tensor(1.0), "first": torch.tensor(2.0), "cat": torch.tensor(4.0)}
    terms = LossTerms.of_views(losses, "last")
    assert [(t.name, t.role, t.weight) for t in terms] == [
        ("last", "main", 1.0), ("first", "auxiliary", 1.0), ("cat", "auxiliary", 1.0)]
    assert [(t.name, t.weight) for t in view_terms(losses, "first", 0.5)] == [
        ("last", 0.5), ("first", 0.5), ("cat", 0.5)]
    assert terms["first"].value is losses["first"]
    with pytest.raises(KeyError, match="'mta'"):
        terms["mta"]


def test_malformed_terms_are_refused():
    one = torch.tensor(1.0)
    with pytest.raises(ValueError, match="no loss term has the role 'main'"):
        LossTerms((LossTerm("first", one),))
    with pytest.raises(ValueError, match="repeat"):
        LossTerms((LossTerm("last", one, role="main"), LossTerm("last", one)))
    with pytest.raises(ValueError, match="scalar"):
        LossTerm("last", torch.ones(3), role="main")
    with pytest.raises(ValueError, match="role 'primary'"):
        LossTerm("last", one, role="primary")
