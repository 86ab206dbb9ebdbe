import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from malt.training.distributed import World
from malt.training.grad_methods import (
    cosines,
    gcs,
    pcgrad,
    shared_matrix,
    task_gradients,
    weighted_on_shared,
)


def _toy():
    """A shared layer, a main head and two auxiliary heads: the graph decides what is shared."""
    torch.manual_seed(0)
    shared = torch.nn.Linear(4, 3)
    heads = torch.nn.ModuleList(torch.nn.Linear(3, 1) for _ in range(3))
    x = torch.randn(16, 4)
    h = torch.relu(shared(x))
    losses = [heads[i](h).pow(2).mean() * (i + 1) for i in range(3)]
    params = [*shared.parameters(), *heads.parameters()]
    return params, task_gradients(losses, params, World())


def test_task_gradients_mark_unreached_parameters_none():
    params, grads = _toy()
    # params: shared.w, shared.b, head0.w, head0.b, head1.w, head1.b, head2.w, head2.b
    assert all(g is not None for g in grads[0][:4]) and grads[0][4] is None
    assert grads[1][2] is None and grads[1][4] is not None


def test_gcs_paper_weights_are_sigmoid_of_cosine_on_shared_parameters():
    params, grads = _toy()
    combined, alphas = gcs(grads, params, "paper")
    flat = [torch.cat([g[i].reshape(-1) for i in (0, 1)]) for g in grads]
    for k, alpha in enumerate(alphas, start=1):
        cos = flat[0] @ flat[k] / (flat[0].norm() * flat[k].norm() + 1e-8)
        assert abs(alpha - torch.sigmoid(cos).item()) < 1e-6
    # Auxiliary heads get their own gradient scaled by their alpha; the main head is untouched.
    torch.testing.assert_close(combined[4], alphas[0] * grads[1][4])
    torch.testing.assert_close(combined[2], grads[0][2])
    expected_shared = grads[0][0] + alphas[0] * grads[1][0] + alphas[1] * grads[2][0]
    torch.testing.assert_close(combined[0], expected_shared)


def test_gcs_reference_leaves_auxiliary_only_parameters_unscaled():
    params, grads = _toy()
    combined, alphas = gcs(grads, params, "reference")
    torch.testing.assert_close(combined[4], grads[1][4])
    torch.testing.assert_close(combined[6], grads[2][6])
    torch.testing.assert_close(combined[0], grads[0][0] + alphas[0] * grads[1][0]
                               + alphas[1] * grads[2][0])


def test_the_paper_variant_is_the_default_and_unknown_variants_are_refused():
    params, grads = _toy()
    for method in (gcs, pcgrad):
        paper, default = method(grads, params, "paper"), method(grads, params)
        assert paper[1] == default[1]
        assert all(torch.equal(a, b) for a, b in zip(paper[0], default[0]) if a is not None)
        with pytest.raises(ValueError, match="^unknown gradient-method variant 'Paper'"):
            method(grads, params, "Paper")
    # where the two differ (parameters only an auxiliary reaches), the default is the paper's
    reference_aux_head = gcs(grads, params, "reference")[0][4]
    torch.testing.assert_close(reference_aux_head, grads[1][4])
    assert not torch.equal(gcs(grads, params)[0][4], reference_aux_head)


def _two_task_grads(a, b):
    p = torch.zeros(len(a), requires_grad=True)
    return [p], [[torch.tensor(a)], [torch.tensor(b)]]


vectors = st.lists(st.floats(-5, 5, allow_nan=False, width=32), min_size=3, max_size=3)


@settings(max_examples=60, deadline=None)
@given(vectors, vectors)
def test_pcgrad_paper_never_conflicts_with_an_original_gradient(a, b):
    params, grads = _two_task_grads(a, b)
    (combined,), _ = pcgrad(grads, params, "paper", torch.Generator().manual_seed(0))
    g_a, g_b = grads[0][0], grads[1][0]
    if g_a.norm() > 1e-3 and g_b.norm() > 1e-3:
        assert combined @ g_a >= -1e-3 * g_a.norm() * (combined.norm() + 1)
        assert combined @ g_b >= -1e-3 * g_b.norm() * (combined.norm() + 1)


def test_pcgrad_leaves_agreeing_gradients_alone():
    params, grads = _two_task_grads([1.0, 2.0, 0.0], [0.5, 0.0, 1.0])
    for variant in ("paper", "reference"):
        (combined,), conflicts = pcgrad(grads, params, variant, torch.Generator().manual_seed(0))
        assert conflicts == 0
        torch.testing.assert_close(combined, torch.tensor([1.5, 2.0, 1.0]))


def test_pcgrad_projects_a_conflicting_pair_onto_normal_planes():
    params, grads = _two_task_grads([1.0, 0.0, 0.0], [-1.0, 1.0, 0.0])
    (paper,), n_paper = pcgrad(grads, params, "paper", torch.Generator().manual_seed(0))
    # main: [1,0,0] - (-1/2)[-1,1,0] = [0.5,0.5,0]; aux: [-1,1,0] - (-1)[1,0,0] = [0,1,0]
    torch.testing.assert_close(paper, torch.tensor([0.5, 1.5, 0.0]))
    assert n_paper == 2
    (reference,), n_ref = pcgrad(grads, params, "reference")
    # only the auxiliary gradient is projected: [1,0,0] + [0,1,0]
    torch.testing.assert_close(reference, torch.tensor([1.0, 1.0, 0.0]))
    assert n_ref == 1


def _conflicting():
    """A shared weight, a main head and two auxiliary heads: aux 1 pulls the shared weight the
    main loss's way, aux 2 against it."""
    shared = torch.tensor([1.0], requires_grad=True)
    heads = [torch.tensor([1.0], requires_grad=True) for _ in range(3)]
    losses = [(shared * heads[0] - 2).pow(2).sum(), (shared * heads[1] - 3).pow(2).sum(),
              (shared * heads[2] + 1).pow(2).sum()]
    params = [shared, *heads]
    return params, task_gradients(losses, params, World())


def test_gcs_clip_drops_a_conflicting_auxiliary_on_shared_parameters_only():
    params, grads = _conflicting()
    combined, weights = gcs(grads, params, "paper", "clip", aux_weight=0.3)
    assert weights[0] == 1.0 and weights[1] == 0.0  # cos = +1 and -1 on the one shared weight
    torch.testing.assert_close(combined[0], grads[0][0] + 0.3 * grads[1][0])
    torch.testing.assert_close(combined[2], 0.3 * grads[1][2])  # towers keep λ · their gradient
    torch.testing.assert_close(combined[3], 0.3 * grads[2][3])
    torch.testing.assert_close(combined[1], grads[0][1])


def test_gcs_binary_weighs_aligned_auxiliaries_by_lambda_and_clip_by_the_cosine():
    params, grads = _toy()
    clipped, cos = gcs(grads, params, "paper", "clip", aux_weight=0.5)
    binary, ones = gcs(grads, params, "paper", "binary", aux_weight=0.5)
    assert ones == [float(c > 0) for c in cos]
    expected = grads[0][0] + sum(0.5 * w * grads[j][0] for j, w in zip((1, 2), ones))
    torch.testing.assert_close(binary[0], expected)
    torch.testing.assert_close(clipped[0], grads[0][0] + sum(
        0.5 * max(c, 0.0) * grads[j][0] for j, c in zip((1, 2), cos)))
    torch.testing.assert_close(binary[4], 0.5 * grads[1][4])


# --- against direct implementations on hand-made gradients --------------------------------------

def _hand_made(seed: int = 0, tasks: int = 4):
    """Parameters [3 shared of different sizes, 1 per task], and per task a gradient on the
    shared ones (None on the last shared one for task 2: it does not reach it) and its head."""
    g = torch.Generator().manual_seed(seed)
    shapes = [(2,), (3, 2), (4,)]
    params = [torch.zeros(s) for s in shapes] + [torch.zeros(2) for _ in range(tasks)]
    grads = []
    for k in range(tasks):
        grad: list = [torch.randn(s, generator=g) for s in shapes]
        if k == 2:
            grad[2] = None
        grad += [torch.randn(2, generator=g) if j == k else None for j in range(tasks)]
        grads.append(grad)
    return params, grads


def _flat_shared(grad, params):
    return torch.cat([(t if t is not None else torch.zeros_like(p)).reshape(-1)
                      for t, p in zip(grad[:3], params[:3])])


def _pcgrad_by_hand(grads, params, seed):
    """PCGrad as specified: every task, in a random order of the others, projected off each
    original gradient it conflicts with; the projections summed on the shared parameters."""
    g = torch.Generator().manual_seed(seed)
    originals = [_flat_shared(grad, params) for grad in grads]
    total, conflicts = torch.zeros_like(originals[0]), 0
    for i, g_i in enumerate(originals):
        g_i = g_i.clone()
        others = [j for j in range(len(grads)) if j != i]
        for j in (others[o] for o in torch.randperm(len(others), generator=g).tolist()):
            dot = g_i @ originals[j]
            if dot < 0:
                g_i = g_i - dot / (originals[j] @ originals[j] + 1e-8) * originals[j]
                conflicts += 1
        total += g_i
    return total, conflicts


@pytest.mark.parametrize("seed", range(3))
def test_pcgrad_paper_is_the_specified_algorithm(seed):
    params, grads = _hand_made(seed)
    combined, conflicts = pcgrad(grads, params, "paper", torch.Generator().manual_seed(seed))
    want, want_conflicts = _pcgrad_by_hand(grads, params, seed)
    got = torch.cat([c.reshape(-1) for c in combined[:3]])
    torch.testing.assert_close(got, want)
    assert conflicts == want_conflicts > 0
    for k in range(4):  # each head keeps its own task's gradient
        torch.testing.assert_close(combined[3 + k], grads[k][3 + k])


def test_pcgrad_paper_projects_exactly_and_the_reference_adds_eps():
    tiny = 1e-5  # |g|² = 1e-10, a hundredth of EPS
    params, grads = _two_task_grads([1.0, 0.0], [-tiny, 0.0])
    (paper,), _ = pcgrad(grads, params, "paper", torch.Generator().manual_seed(0))
    # task 0: [1,0] - (-1e-5 / 1e-10)[-1e-5, 0] = [0, 0]; task 1: [-1e-5,0] + 1e-5·[1,0] = [0, 0]
    torch.testing.assert_close(paper, torch.tensor([0.0, 0.0]), atol=1e-6, rtol=0)
    params, grads = _two_task_grads([-tiny, 0.0], [1.0, 0.0])
    (reference,), _ = pcgrad(grads, params, "reference")
    # the reference divides by |g|² + EPS = 1.01e-8: the auxiliary [1,0] projected off the main
    # [-1e-5, 0] keeps 1 - 1e-10 / 1.01e-8 = 1 - 1/101 of itself
    torch.testing.assert_close(reference, torch.tensor([-tiny + 1 - 1 / 101, 0.0]), atol=1e-6,
                               rtol=0)


def test_orthogonal_gradients_are_no_conflict():
    params, grads = _two_task_grads([1.0, 0.0], [0.0, 1.0])
    for variant in ("paper", "reference"):
        _, conflicts = pcgrad(grads, params, variant, torch.Generator().manual_seed(0))
        assert conflicts == 0
    _, weights = gcs(grads, params, "paper", "binary")
    assert weights == [0.0]


def test_pcgrad_reference_handles_parameters_one_task_does_not_reach():
    main = torch.tensor([1.0, 0.0])
    params = [torch.zeros(2), torch.zeros(2), torch.zeros(2)]
    grads = [[main, None, None],                           # the main loss reaches p0 only
             [torch.tensor([-1.0, 1.0]), torch.tensor([2.0, 0.0]), None],
             [None, torch.tensor([0.0, 3.0]), torch.tensor([1.0, 1.0])]]
    combined, conflicts = pcgrad(grads, params, "reference")
    # aux 1 on p0 conflicts with main: [-1,1] - (-1)/1·[1,0] = [0,1]; every other part unchanged
    torch.testing.assert_close(combined[0], main + torch.tensor([0.0, 1.0]))
    torch.testing.assert_close(combined[1], torch.tensor([2.0, 3.0]))
    torch.testing.assert_close(combined[2], torch.tensor([1.0, 1.0]))
    assert conflicts == 1
    twice = [[main, main], [-main, -main]]
    assert pcgrad(twice, [torch.zeros(2), torch.zeros(2)], "reference")[1] == 2


def test_gcs_reference_weights_by_the_sigmoid_of_the_cosine_over_reached_parameters():
    main, aux = torch.tensor([3.0, 4.0]), torch.tensor([4.0, 3.0])
    only_main = torch.tensor([10.0, 0.0])
    params = [torch.zeros(2), torch.zeros(2)]
    grads = [[main, only_main], [aux, None]]
    combined, (alpha,) = gcs(grads, params, "reference")
    # cos over the parameter both reach: 24 / 25
    assert alpha == pytest.approx(torch.sigmoid(torch.tensor(24 / 25)).item(), rel=1e-6)
    torch.testing.assert_close(combined[0], main + alpha * aux)
    torch.testing.assert_close(combined[1], only_main)


def test_gcs_paper_counts_an_unreached_shared_parameter_as_zero():
    params, grads = _hand_made(1)
    _, alphas = gcs(grads, params, "paper")
    main = _flat_shared(grads[0], params)
    for k, alpha in zip((1, 2, 3), alphas):
        other = _flat_shared(grads[k], params)
        cos = main @ other / (main.norm() * other.norm() + 1e-8)
        assert alpha == pytest.approx(torch.sigmoid(cos).item(), rel=1e-6)


def test_gcs_clip_defaults_to_a_lambda_of_one_and_refuses_unknown_weightings():
    params, grads = _conflicting()
    combined, _ = gcs(grads, params, "paper", "clip")
    torch.testing.assert_close(combined[2], grads[1][2])
    with pytest.raises(ValueError, match="^unknown GCS weighting 'soft'"):
        gcs(grads, params, "paper", "soft")


def test_tasks_without_shared_parameters_have_an_empty_matrix_and_no_similarity():
    towers = [torch.nn.Linear(2, 1) for _ in range(2)]
    x = torch.randn(8, 2)
    params = [p for t in towers for p in t.parameters()]
    grads = task_gradients([t(x).pow(2).mean() for t in towers], params, World())
    matrix, shared = shared_matrix(grads, params)
    assert matrix.shape == (2, 0) and shared == []
    assert [float(c) for c in cosines(grads, params)] == [0.0]
    combined = weighted_on_shared(grads, params, [1.0], aux_weight=0.5)
    torch.testing.assert_close(combined[0], grads[0][0])
    torch.testing.assert_close(combined[2], 0.5 * grads[1][2])


def test_the_empty_matrix_takes_the_first_parameters_dtype():
    # The matrix feeds the aggregators beside the model's gradients: same dtype and device as
    # the parameters, even when one parameter is all there is.
    params = [torch.zeros(3, dtype=torch.float64)]
    grads = [[torch.ones(3, dtype=torch.float64)], [None]]
    matrix, shared = shared_matrix(grads, params)
    assert matrix.shape == (2, 0) and matrix.dtype == torch.float64 and shared == []
    params = [torch.zeros(2, dtype=torch.float64), torch.zeros(2, dtype=torch.float32)]
    grads = [[torch.ones(2, dtype=torch.float64), None], [None, torch.ones(2)]]
    assert shared_matrix(grads, params)[0].dtype == torch.float64
