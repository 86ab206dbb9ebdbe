"""Auxiliary-task learning by gradient manipulation: GCS and PCGrad.

Both need one gradient per task (main + each auxiliary view), taken with separate
`torch.autograd.grad` calls on the same graph. *Shared* parameters are found from the graph, not
listed by hand: those the main loss and at least one auxiliary loss reach.

`paper` variants follow the MAC paper's App. C:
- GCS: cos_k = <g_m, g_k> / (|g_m| |g_k| + ε) over the flattened shared parameters, and a weight
  w_k per auxiliary task by `weighting`:
  - `sigmoid` (MAC App. C, the default): w_k = sigmoid(cos_k); the update of every parameter is
    the gradient of L_main + Σ_k w_k L_k. λ is not used: w_k ∈ (0.27, 0.73) takes its place.
  - `clip` (the GCS paper's weighted form): w_k = max(0, cos_k); `binary` (its unweighted form):
    w_k = 1(cos_k > 0). Shared parameters get g_main + Σ_k λ w_k g_k, so an auxiliary task
    whose gradient conflicts with the main one does not move them at all; parameters only
    auxiliary losses reach (their towers) get λ g_k, parameters only the main loss reaches
    g_main. λ enters as in the plain weighted sum.
- PCGrad: on the flattened shared parameters every task gradient (main included) is projected, in
  a random order of the other tasks, onto the normal plane of each original gradient it conflicts
  with (negative inner product); the projected gradients are summed. Task-specific parameters
  receive their own losses' gradients. λ is not used (MAC App. C): every task enters with
  weight 1.
`reference` variants reproduce the public release of the paper:
- GCS: cosine over every parameter both losses reach, no ε; a parameter the main loss does not
  reach takes the auxiliary gradient unscaled.
- PCGrad: per parameter tensor, only auxiliary gradients are projected and only against the main
  gradient, in the given order; the main gradient is never changed.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from malt.training.distributed import World, all_reduce_mean

EPS = 1e-8
Grads = list[torch.Tensor | None]


def task_gradients(losses: Sequence[torch.Tensor], params: Sequence[torch.Tensor], world: World
                   ) -> list[Grads]:
    """One gradient list per loss (None where a loss does not reach a parameter), averaged over
    ranks task by task, so the surgery below runs on the same numbers on every rank."""
    grads: list[Grads] = []
    for i, loss in enumerate(losses):
        g = torch.autograd.grad(loss, params, retain_graph=i < len(losses) - 1, allow_unused=True)
        all_reduce_mean([t for t in g if t is not None], world)
        grads.append(list(g))
    return grads


def _flat(grads: Grads, index: Sequence[int], like: Sequence[torch.Tensor]) -> torch.Tensor:
    """Concatenation of `grads` at `index`, zeros where a gradient is missing."""
    return torch.cat([(grads[i] if grads[i] is not None else torch.zeros_like(like[i])).reshape(-1)
                      for i in index])


def unflatten_into(flat: torch.Tensor, index: Sequence[int], params: Sequence[torch.Tensor],
                   out: Grads) -> None:
    """Write the pieces of `flat` into `out` at `index`, each shaped as its parameter."""
    offset = 0
    for i in index:
        n = params[i].numel()
        out[i] = flat[offset:offset + n].view_as(params[i])
        offset += n


def _shared_index(grads: list[Grads]) -> list[int]:
    main, aux = grads[0], grads[1:]
    return [i for i, g in enumerate(main) if g is not None and any(a[i] is not None for a in aux)]


def _combine(tensors: Sequence[torch.Tensor | None], weights: Sequence[float | torch.Tensor]
             ) -> torch.Tensor | None:
    """Σ w · t over the tasks that reach a parameter (None when none does)."""
    out = None
    for t, w in zip(tensors, weights):
        if t is not None:
            out = t * w if out is None else out + t * w
    return out


def _sum(grads: list[Grads], weights: Sequence[float | torch.Tensor], n_params: int) -> Grads:
    return [_combine([g[i] for g in grads], weights) for i in range(n_params)]


def gcs(grads: list[Grads], params: Sequence[torch.Tensor], variant: str = "paper",
        weighting: str = "sigmoid", aux_weight: float = 1.0) -> tuple[Grads, list[float]]:
    """Combined gradient and the weight w_k given to each auxiliary task (see the module
    docstring; `aux_weight` is λ, used by the `clip` and `binary` weightings only)."""
    _check_variant(variant)
    main, aux = grads[0], grads[1:]
    alphas: list[torch.Tensor] = []
    if variant == "paper":
        alphas = [_similarity_weight(cos, weighting) for cos in cosines(grads, params)]
        if weighting == "sigmoid":
            combined = _sum(grads, [1.0, *alphas], len(params))
        else:
            combined = weighted_on_shared(grads, params, alphas, aux_weight)
    else:
        combined = list(main)
        for g in aux:
            both = [i for i in range(len(params)) if main[i] is not None and g[i] is not None]
            g_main, g_k = _flat(main, both, params), _flat(g, both, params)
            alpha = torch.sigmoid(g_main @ g_k / (g_main.norm() * g_k.norm()))
            alphas.append(alpha)
            for i, t in enumerate(g):
                if t is not None:
                    combined[i] = t.clone() if combined[i] is None else combined[i] + alpha * t
    return combined, [float(a) for a in alphas]


def shared_matrix(grads: list[Grads], params: Sequence[torch.Tensor]
                  ) -> tuple[torch.Tensor, list[int]]:
    """The task gradients on the flattened shared parameters, `[tasks, n_shared]` (main task
    first), and the indices of those parameters in `params`."""
    shared = _shared_index(grads)
    if not shared:  # every task has parameters of its own only (single_task)
        return params[0].new_zeros(len(grads), 0), shared
    return torch.stack([_flat(g, shared, params) for g in grads]), shared


def cosines(grads: list[Grads], params: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """cos_k = <g_m, g_k> / (|g_m| |g_k| + ε) of every auxiliary task k on the flattened shared
    parameters."""
    matrix, _ = shared_matrix(grads, params)
    g_main = matrix[0]
    return [g_main @ g_k / (g_main.norm() * g_k.norm() + EPS) for g_k in matrix[1:]]


def weighted_on_shared(grads: list[Grads], params: Sequence[torch.Tensor],
                       weights: Sequence[float | torch.Tensor], aux_weight: float) -> Grads:
    """Shared parameters get g_m + Σ_k λ w_k g_k, parameters only auxiliary losses reach λ g_k,
    those only the main loss reaches g_m (`weights`: one w_k per auxiliary task)."""
    shared = set(_shared_index(grads))
    on_shared = [1.0, *(aux_weight * w for w in weights)]
    elsewhere = [1.0, *[aux_weight] * (len(grads) - 1)]
    return [_combine([g[i] for g in grads], on_shared if i in shared else elsewhere)
            for i in range(len(params))]


def _check_variant(variant: str) -> None:
    if variant not in ("paper", "reference"):
        raise ValueError(f"unknown gradient-method variant '{variant}' (paper or reference)")


def _similarity_weight(cos: torch.Tensor, weighting: str) -> torch.Tensor:
    if weighting == "sigmoid":
        return torch.sigmoid(cos)
    if weighting == "clip":
        return cos.clamp(min=0.0)
    if weighting == "binary":
        return (cos > 0).to(cos.dtype)
    raise ValueError(f"unknown GCS weighting '{weighting}'")


def pcgrad(grads: list[Grads], params: Sequence[torch.Tensor], variant: str = "paper",
           generator: torch.Generator | None = None) -> tuple[Grads, int]:
    """Combined gradient and the number of projections made (conflicts found)."""
    _check_variant(variant)
    conflicts = 0
    if variant == "paper":
        shared = _shared_index(grads)
        originals = [_flat(g, shared, params) for g in grads]
        projected = []
        for i, g_i in enumerate(originals):
            g_i = g_i.clone()
            others = [j for j in range(len(originals)) if j != i]
            order = torch.randperm(len(others), generator=generator).tolist()
            for j in (others[o] for o in order):
                dot = g_i @ originals[j]
                if dot < 0:
                    # No ε added: it would leave ε/|g_j|² of the conflict in place, 0.3% for a
                    # gradient of norm 0.002; a negative dot already means |g_j| > 0, and the
                    # clamp only guards an underflowed square.
                    square = originals[j].square().sum().clamp_min(torch.finfo(dot.dtype).tiny)
                    g_i -= dot / square * originals[j]
                    conflicts += 1
            projected.append(g_i)
        combined = _sum(grads, [1.0] * len(grads), len(params))
        unflatten_into(torch.stack(projected).sum(0), shared, params, combined)
        return combined, conflicts
    main, aux = grads[0], grads[1:]
    combined = [t.clone() if t is not None else None for t in main]
    for g in aux:
        for i, t in enumerate(g):
            if t is None:
                continue
            m = main[i]
            if m is not None:
                dot = (m * t).sum()
                if dot < 0:
                    t = t - dot / (m.square().sum() + EPS) * m
                    conflicts += 1
            combined[i] = t if combined[i] is None else combined[i] + t
    return combined, conflicts
