"""One optimiser step of the trainer, against the same step done by hand.

Each test builds a run, copies its model and optimiser, does by hand what a step must do
(losses, `L_main + λ · Σ L_aux` or the gradient method's combined gradient, the per-rank scale,
clipping, one Adam step) and checks that `Trainer.train_step` leaves the same parameters.
"""

from __future__ import annotations

import contextlib
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from malt.data.batches import DayBatches
from malt.losses.terms import LossTerm, LossTerms
from malt.runs.config import RunConfig
from malt.runs.directory import RunDir
from malt.training import grad_methods
from malt.training.builder import build_run
from malt.training.distributed import World
from malt.training.optim import clip_gradients
from malt.training.trainer import Trainer
from support.mac_data import write_random_dataset
from support.training_steps import reference_optimisation


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return write_random_dataset(tmp_path_factory.mktemp("step") / "data", days=3, rows=200)


def _trainer(data: Path, tmp_path: Path, *, aux_weight=0.3, **train) -> Trainer:
    config = RunConfig.from_dict({
        "seed": 5, "data": {"path": str(data)},
        "task": {"main": "last", "aux": ["first", "linear"], "aux_weight": aux_weight},
        "train": {"batch_size": 64, "log_every": 3, "warmup_fraction": 0.0, "lr": 0.01,
                  **train},
        "model": {"name": "mmoe", "encoder": {"embed_dim": 8, "attention_heads": 2},
                  "expert": {"dim": 16}, "tower": {"dims": [8, 4]}}})
    return Trainer(build_run(config), RunDir(tmp_path / "run"))


def _batch(trainer: Trainer, step: int = 0) -> dict:
    batches = iter(DayBatches(trainer.train_days[0], trainer.config.train.batch_size))
    for _ in range(step):
        next(batches)
    return next(batches)



def _losses(model, batch, task):
    """The main view's loss and the other views' (MMoE's terms: one per view, weight 1)."""
    terms = model.loss_terms(model(batch), batch)
    main = terms[task.main].value
    aux = [t.value for t in terms if t.name != task.main]
    return main, aux


def _assert_same_parameters(a, b):
    for (name, p), q in zip(a.named_parameters(), b.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=0, msg=name)


@pytest.mark.parametrize("aux_weight", [0.3, 0.0])
def test_a_step_is_one_adam_step_on_main_plus_lambda_times_the_auxiliary_losses(
        data, tmp_path, aux_weight):
    trainer = _trainer(data, tmp_path, aux_weight=aux_weight)
    batch = _batch(trainer)
    model, optimisation = reference_optimisation(trainer)
    main, aux = _losses(model, batch, trainer.task)
    (main + aux_weight * sum(aux)).backward()
    optimisation.step()
    before = [p.detach().clone() for p in trainer.model.parameters()]
    report = trainer.train_step(batch)
    _assert_same_parameters(trainer.model, model)
    assert any(not torch.equal(a, b) for a, b in zip(before, trainer.model.parameters()))
    assert all(p.grad is None for p in trainer.model.parameters())  # zeroed after the step
    assert report.rows == batch["labels"].shape[0]


def test_the_auxiliary_weight_is_lambda_not_one(data, tmp_path):
    trainer = _trainer(data, tmp_path, aux_weight=0.3)
    batch = _batch(trainer)
    model, optimisation = reference_optimisation(trainer)
    main, aux = _losses(model, batch, trainer.task)
    (main + 1.0 * sum(aux)).backward()
    optimisation.step()
    trainer.train_step(batch)
    assert any(not torch.equal(p, q) for p, q in zip(trainer.model.parameters(),
                                                     model.parameters()))


def test_each_rank_scales_its_loss_by_its_share_of_the_step(data, tmp_path):
    trainer = _trainer(data, tmp_path)
    # A world of two whose step held one row more than twice this rank's rows.
    trainer.world = World(rank=0, size=2)
    batch = _batch(trainer)
    rows = batch["labels"].shape[0]
    batch["step_rows"] = torch.tensor(2 * rows + 1)
    model, optimisation = reference_optimisation(trainer)
    main, aux = _losses(model, batch, trainer.task)
    ((main + 0.3 * sum(aux)) * (2 * rows / (2 * rows + 1))).backward()
    optimisation.step()
    trainer.train_step(batch)
    _assert_same_parameters(trainer.model, model)


@pytest.mark.parametrize("method", ["gcs", "pcgrad"])
def test_a_gradient_method_steps_with_its_combined_gradient(data, tmp_path, method):
    trainer = _trainer(data, tmp_path, grad_method=method, gcs_weighting="sigmoid")
    batch = _batch(trainer)
    model, optimisation = reference_optimisation(trainer)
    generator = torch.Generator()
    generator.set_state(trainer.generator.get_state())
    main, aux = _losses(model, batch, trainer.task)
    params = [p for p in model.parameters() if p.requires_grad]
    grads = grad_methods.task_gradients([main, *aux], params, World())
    combined, alphas = grad_methods.gcs(grads, params) if method == "gcs" else \
        grad_methods.pcgrad(grads, params, "paper", generator)
    for p, g in zip(params, combined):
        p.grad = g
    optimisation.step()
    before = [p.detach().clone() for p in trainer.model.parameters()]
    report = trainer.train_step(batch)
    _assert_same_parameters(trainer.model, model)
    assert any(not torch.equal(a, b) for a, b in zip(before, trainer.model.parameters()))
    if method == "gcs":  # the sigmoid weighting replaces λ: each view is weighed by α_k alone
        assert report.task_weights == pytest.approx(
            {"last": 1.0, "first": float(alphas[0]), "linear": float(alphas[1])}, rel=1e-6)


def test_gcs_passes_its_weighting_and_lambda(data, tmp_path):
    trainer = _trainer(data, tmp_path, grad_method="gcs", gcs_weighting="clip")
    batch = _batch(trainer)
    model, optimisation = reference_optimisation(trainer)
    main, aux = _losses(model, batch, trainer.task)
    params = [p for p in model.parameters() if p.requires_grad]
    grads = grad_methods.task_gradients([main, *aux], params, World())
    combined, alphas = grad_methods.gcs(grads, params, "paper", "clip", 0.3)
    for p, g in zip(params, combined):
        p.grad = g
    optimisation.step()
    report = trainer.train_step(batch)
    _assert_same_parameters(trainer.model, model)
    # clip keeps λ: a view's weight in the update is λ · α_k
    assert report.task_weights == pytest.approx(
        {"last": 1.0, "first": 0.3 * float(alphas[0]), "linear": 0.3 * float(alphas[1])},
        rel=1e-6)


def test_gradients_are_clipped_to_the_configured_norm(data, tmp_path):
    trainer = _trainer(data, tmp_path, grad_clip=1e-3, table_optimizer="dense")
    batch = _batch(trainer)
    model, optimisation = reference_optimisation(trainer)
    main, aux = _losses(model, batch, trainer.task)
    (main + 0.3 * sum(aux)).backward()
    torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.grad is not None],
                                   1e-3)
    optimisation.step()
    trainer.train_step(batch)
    _assert_same_parameters(trainer.model, model)


def test_the_model_trains_in_training_mode(data, tmp_path):
    trainer = _trainer(data, tmp_path)
    trainer.model.eval()
    trainer.train_step(_batch(trainer))
    assert trainer.model.training


def test_losses_are_reported_at_the_first_the_last_and_every_log_interval(data, tmp_path):
    trainer = _trainer(data, tmp_path)
    batch = _batch(trainer)
    due = []
    for step in range(trainer.total_steps):
        trainer.state = replace(trainer.state, global_step=step)
        report = trainer.train_step(batch)
        assert report.rows == batch["labels"].shape[0]
        if report.losses:
            due.append(step)
            assert set(report.losses) == {"last", "first", "linear"}
            assert all(isinstance(v, float) for v in report.losses.values())
            assert report.main_loss == report.losses["last"]
        else:
            assert report.losses == {} and report.main_loss is None
    last = trainer.total_steps - 1
    assert due == sorted({0, last, *range(2, trainer.total_steps, 3)})


def test_a_masked_run_trains_on_the_mask_of_the_day_in_progress(tmp_path):
    import json

    from support.kaml_data import kaml_schema, write_kaml_dataset

    root = write_kaml_dataset(tmp_path / "kaml", days=4, rows=120)
    (root / "schema.json").write_text(json.dumps(kaml_schema().to_dict()))
    config = RunConfig.from_dict({
        "seed": 3, "data": {"path": str(root), "schema": str(root / "schema.json")},
        "task": {"main": "act", "aux": ["reg", "pay"], "mask": "adm", "adm_alpha": 2.0,
                 "adm_window_days": 1},
        "train": {"batch_size": 48, "warmup_fraction": 0.0},
        "model": {"name": "mmoe", "encoder": {"embed_dim": 8, "attention_heads": 2},
                  "expert": {"dim": 16}, "tower": {"dims": [8, 4]}}})
    trainer = Trainer(build_run(config), RunDir(tmp_path / "run"))
    trainer.state = replace(trainer.state, day=2)
    batch = next(iter(DayBatches(trainer.train_days[2], 48)))
    masked = trainer.masks.apply(batch, 2)
    assert not torch.equal(masked["mask"], trainer.masks.apply(batch, 0)["mask"])
    model, optimisation = reference_optimisation(trainer)
    main, aux = _losses(model, masked, trainer.task)
    (main + trainer.task.aux_weight * sum(aux)).backward()
    optimisation.step()
    trainer.train_step(batch)
    _assert_same_parameters(trainer.model, model)


@pytest.mark.parametrize("method", ["gcs", "pcgrad"])
def test_a_gradient_method_scales_every_task_by_the_ranks_share(data, tmp_path, monkeypatch,
                                                                method):
    trainer = _trainer(data, tmp_path, grad_method=method)
    # A world of two without its process group: the task gradients are not all-reduced.
    monkeypatch.setattr(grad_methods, "all_reduce_mean", lambda tensors, world: None)
    trainer.world = World(rank=0, size=2)
    trainer.net = _DistributedStandIn(trainer.model)
    batch = _batch(trainer)
    rows = batch["labels"].shape[0]
    batch["step_rows"] = torch.tensor(2 * rows + 1)
    scale = 2 * rows / (2 * rows + 1)
    model, optimisation = reference_optimisation(trainer)
    generator = torch.Generator()
    generator.set_state(trainer.generator.get_state())
    main, aux = _losses(model, batch, trainer.task)
    params = [p for p in model.parameters() if p.requires_grad]
    grads = grad_methods.task_gradients([main * scale, *(a * scale for a in aux)], params,
                                        World())
    combined = grad_methods.gcs(grads, params)[0] if method == "gcs" else \
        grad_methods.pcgrad(grads, params, "paper", generator)[0]
    for p, g in zip(params, combined):
        p.grad = g
    optimisation.step()
    trainer.train_step(batch)
    _assert_same_parameters(trainer.model, model)
    # Each task's gradient is all-reduced by the method itself, so DDP's own sync is off.
    assert trainer.net.no_sync_entered == 1


class _DistributedStandIn(torch.nn.Module):
    """Calls the model like DDP does and counts the `no_sync` blocks entered."""

    def __init__(self, model):
        super().__init__()
        self.model = model
        self.no_sync_entered = 0

    def forward(self, batch):
        return self.model(batch)

    def no_sync(self):
        self.no_sync_entered += 1
        return contextlib.nullcontext()


@pytest.mark.parametrize("table_optimizer", ["rows", "lazy"])
def test_clipping_scales_the_sparse_table_gradients_too(data, tmp_path, table_optimizer):
    trainer = _trainer(data, tmp_path, grad_clip=1e-3, table_optimizer=table_optimizer)
    batch = _batch(trainer)
    model, optimisation = reference_optimisation(trainer)
    main, aux = _losses(model, batch, trainer.task)
    (main + 0.3 * sum(aux)).backward()
    assert any(p.grad.is_sparse for p in model.parameters() if p.grad is not None)
    clip_gradients(list(model.parameters()), 1e-3)
    optimisation.step()
    trainer.train_step(batch)
    _assert_same_parameters(trainer.model, model)


def _reweighted(terms: LossTerms) -> LossTerms:
    """MMoE's terms restated by a model of its own: the main view at weight 2, `linear` a second
    main-task term, `first` an auxiliary task at weight 0.5."""
    return LossTerms((LossTerm("last", terms["last"].value, 2.0, "main"),
                      LossTerm("first", terms["first"].value, 0.5, "auxiliary"),
                      LossTerm("linear", terms["linear"].value, 1.0, "main")))


def _with_reweighted_terms(trainer: Trainer) -> None:
    model = trainer.model
    plain = model.loss_terms
    model.loss_terms = lambda outputs, batch: _reweighted(plain(outputs, batch))


def test_a_step_combines_the_terms_a_model_states_by_their_weights_and_roles(data, tmp_path):
    trainer = _trainer(data, tmp_path, aux_weight=0.3)
    _with_reweighted_terms(trainer)
    batch = _batch(trainer)
    model, optimisation = reference_optimisation(trainer)
    main, (first, linear) = _losses(model, batch, trainer.task)
    (2.0 * main + linear + 0.3 * (0.5 * first)).backward()
    optimisation.step()
    report = trainer.train_step(batch)
    _assert_same_parameters(trainer.model, model)
    main, first, linear = main.detach(), first.detach(), linear.detach()
    assert report.losses == {"last": float(2.0 * main), "first": float(0.5 * first),
                             "linear": float(linear)}
    assert report.main_loss == float(2.0 * main + linear)


@pytest.mark.parametrize("method", ["gcs", "pcgrad"])
def test_gradient_methods_see_exactly_the_main_task_and_each_auxiliary_term(
        data, tmp_path, monkeypatch, method):
    trainer = _trainer(data, tmp_path, aux_weight=0.3, grad_method=method)
    _with_reweighted_terms(trainer)
    seen = []
    task_gradients = grad_methods.task_gradients

    def spy(losses, params, world):
        seen.append([float(loss.detach()) for loss in losses])
        return task_gradients(losses, params, world)

    monkeypatch.setattr(grad_methods, "task_gradients", spy)
    batch = _batch(trainer)
    model, _ = reference_optimisation(trainer)
    with torch.no_grad():
        main, (first, linear) = _losses(model, batch, trainer.task)
    trainer.train_step(batch)
    # The main task is both main terms; λ is the method's to apply, not in the tasks.
    assert seen == [[float(2.0 * main + linear), float(0.5 * first)]]
