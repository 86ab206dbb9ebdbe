"""Row-wise Adam: dense Adam's numbers on embedding tables at the cost of the rows a step touched.

Dense Adam moves every row of a table at every step: a row the batch did not look up has a zero
gradient, so its moments decay (m ← β1·m, v ← β2·v) and its weight keeps moving by
c_u · m_u / √v_u, where c_u = η_u · √(1 − β2^u) / (1 − β1^u) is step u's corrected rate. Those
idle steps have a closed form. For a row last updated at step s, with moments m_s, v_s,

    m_u / √v_u = r^(u−s) · m_s / √v_s,   r = β1 / √β2,

so the idle steps s+1 … t move it by (m_s / √v_s) · Σ_{u=s+1}^{t} c_u r^(u−s) in all, and
decay its moments by β^(t−s). `RowAdam` keeps, for every step s, that sum so far (`pending[s, 0]`,
float64; each step adds c_t · r^(t−s) to the last `window(betas)` sums only, older terms being
below 1e-9 of the first) and applies a row's pending steps when it is needed: as a training
forward pass looks the row up (`watch`: it then reads dense Adam's weights), at the row's next
update, and for every row at `catch_up()`. The weights are then dense Adam's up to float
rounding and ε in the idle steps: dense Adam divides step u by √v_u / √(1 − β2^u) + ε, i.e.
the closed form's √v_s by √v_s + ε · √(1 − β2^u) / β2^((u−s)/2); `pending` also sums that ε
coefficient weighted by each step's move, and the closed form uses the weighted mean. It is
exact where the coefficient is constant (after the first thousands of steps, when
√(1 − β2^u) ≈ 1) and otherwise differs only for rows whose gradients are within a few orders
of magnitude of ε (1e-8).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch

CATCH_UP_ROWS = 1 << 20
"""Rows `catch_up` processes at once (bounds its temporary memory on MAC-scale tables)."""
NEGLIGIBLE = 1e-9
"""An idle step's share of the first one below which `pending` stops collecting it."""
MARK_RATIO = 4
"""`distinct_rows` marks a table's rows instead of sorting the ids when the table has at most
this many rows per id: marking costs O(rows + ids), sorting O(ids log ids) (BENCHMARKS.md,
"distinct rows without sorting")."""


def distinct_rows(ids: torch.Tensor, table_rows: int) -> tuple[torch.Tensor, torch.Tensor]:
    """`torch.unique(ids, return_inverse=True)` of 1-D row ids of a table of `table_rows` rows:
    (distinct rows [U] ascending, each id's position among them [N]).

    For tables of up to `MARK_RATIO` rows per id, without a sort: mark the rows looked up, read
    them off in order, and number them.
    """
    if table_rows > MARK_RATIO * ids.numel():
        return torch.unique(ids, return_inverse=True)
    looked_up = torch.zeros(table_rows, dtype=torch.bool, device=ids.device)
    looked_up[ids] = True
    rows = looked_up.nonzero().squeeze(1)
    # Only the looked-up rows' entries are written and read: the rest may stay uninitialised.
    position = torch.empty(table_rows, dtype=ids.dtype, device=ids.device)
    position[rows] = torch.arange(rows.numel(), dtype=ids.dtype, device=ids.device)
    return rows, position[ids]


def window(betas: tuple[float, float]) -> int:
    """Idle steps after a row's update that `pending` collects: r^window < 1e-9, r = β1/√β2."""
    ratio = betas[0] / math.sqrt(betas[1])
    return 1 if ratio == 0 else math.ceil(math.log(NEGLIGIBLE) / math.log(ratio))


class RowAdam(torch.optim.Optimizer):
    """Adam for tables with sparse (row) gradients whose result equals dense Adam's once
    `catch_up()` has run; see the module docstring. Each step costs O(rows touched × dim)."""

    def __init__(self, params: Iterable[torch.nn.Parameter], lr: float,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8):
        if not 0.0 <= betas[0] < math.sqrt(betas[1]) < 1.0:
            raise ValueError(f"RowAdam needs 0 <= beta1 < sqrt(beta2) < 1, got betas {betas}")
        super().__init__(params, {"lr": lr, "betas": tuple(betas), "eps": eps})
        self._lookups: dict[torch.Tensor, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}
        """Table -> (ids, distinct ids, inverse) of its last training lookup (`refresh`)."""

    @torch.no_grad()
    def step(self, closure: None = None) -> None:
        if closure is not None:
            raise ValueError("RowAdam does not take a closure")
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for param in group["params"]:
                if param.grad is None:
                    continue
                if not param.grad.is_sparse:
                    raise ValueError("RowAdam needs sparse gradients (nn.Embedding(sparse=True))")
                state = self.state[param]
                if not state:
                    state["step"] = 0
                    # m and v side by side: one gather and one scatter move both.
                    state["moments"] = param.new_zeros(param.shape[0], 2, param.shape[1])
                    state["last_step"] = torch.zeros(param.shape[0], dtype=torch.int32,
                                                     device=param.device)
                    state["pending"] = torch.zeros(64, 2, dtype=torch.float64,
                                                   device=param.device)
                rows, grad = self._summed_rows(param)
                self._bring_up_to_date(param, state, rows, group)
                state["step"] += 1
                self._adam_rows(param, state, rows, grad, group)
                t = state["step"]
                rate = group["lr"] * math.sqrt(1 - beta2 ** t) / (1 - beta1 ** t)
                self._defer(state, rate, group["betas"])

    def _summed_rows(self, param: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The distinct rows [U] of `param`'s sparse gradient and their summed gradients
        [U, D]. An embedding's gradient lists the looked-up ids in order, which the forward
        pass's `refresh` has already made distinct: reuse them when they match."""
        grad = param.grad
        if grad.is_coalesced():
            return grad.indices()[0], grad.values()
        indices, values = grad._indices()[0], grad._values()
        looked_up = self._lookups.pop(param, None)
        if looked_up is not None and looked_up[0].shape == indices.shape and \
                torch.equal(looked_up[0], indices):
            rows, inverse = looked_up[1], looked_up[2]
        else:
            rows, inverse = distinct_rows(indices, param.shape[0])
        summed = values.new_zeros(rows.shape[0], values.shape[1]).index_add_(0, inverse, values)
        return rows, summed

    @staticmethod
    def _adam_rows(param: torch.Tensor, state: dict, rows: torch.Tensor, grad: torch.Tensor,
                   group: dict) -> None:
        """Adam's step t on up-to-date `rows` [U] (distinct) with gradients `grad` [U, D], in
        torch's form: ε is added to the bias-corrected √v."""
        beta1, beta2 = group["betas"]
        t = state["step"]
        moments = state["moments"].index_select(0, rows)
        m, v = moments[:, 0], moments[:, 1]
        m.mul_(beta1).add_(grad, alpha=1 - beta1)
        v.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        denominator = v.sqrt().div_(math.sqrt(1 - beta2 ** t)).add_(group["eps"])
        w = param.index_select(0, rows).addcdiv_(m, denominator,
                                                 value=-group["lr"] / (1 - beta1 ** t))
        param.index_copy_(0, rows, w)
        state["moments"].index_copy_(0, rows, moments)
        state["last_step"].index_fill_(0, rows, state["step"])

    @staticmethod
    def _defer(state: dict, rate: float, betas: tuple[float, float]) -> None:
        """Add step t's idle move c_t · r^(t−s), and the same times its ε coefficient
        √(1 − β2^t) / β2^((t−s)/2), to `pending[s]` of the recent steps s < t."""
        beta1, beta2 = betas
        t = state["step"]
        pending = state["pending"]
        if pending.shape[0] <= t:
            grown = pending.new_zeros(2 * pending.shape[0], 2)
            grown[:pending.shape[0]] = pending
            state["pending"] = pending = grown
        first = max(0, t - window(betas))
        lags = torch.arange(t - first, 0, -1, dtype=torch.float64, device=pending.device)
        moves = rate * (beta1 / math.sqrt(beta2)) ** lags
        pending[first:t, 0] += moves
        pending[first:t, 1] += moves * math.sqrt(1 - beta2 ** t) * beta2 ** (-lags / 2)

    @torch.no_grad()
    def catch_up(self) -> None:
        """Apply every row's pending idle steps: the tables then hold dense Adam's weights."""
        for group in self.param_groups:
            for param in group["params"]:
                state = self.state.get(param)
                if state:
                    behind = state["last_step"].nonzero().squeeze(1)
                    for rows in behind.split(CATCH_UP_ROWS):
                        self._bring_up_to_date(param, state, rows, group)

    @torch.no_grad()
    def refresh(self, param: torch.Tensor, ids: torch.Tensor) -> None:
        """Apply the pending idle steps of the rows `ids` (any shape) of table `param` before a
        forward pass reads them, so that it sees dense Adam's weights (`watch` calls this)."""
        ids = ids.reshape(-1)
        rows, inverse = distinct_rows(ids, param.shape[0])
        self._lookups[param] = (ids, rows, inverse)
        state = self.state.get(param)
        if state:
            self._bring_up_to_date(param, state, rows, self._group_of(param))

    def watch(self, module: torch.nn.Module) -> None:
        """Refresh the rows of every `nn.Embedding` of `module` whose table this optimiser
        updates as each training-mode forward pass looks them up."""
        tables = {id(p) for group in self.param_groups for p in group["params"]}

        def refresh_lookup(embedding: torch.nn.Embedding, args: tuple) -> None:
            if embedding.training:
                self.refresh(embedding.weight, args[0])

        for embedding in module.modules():
            if isinstance(embedding, torch.nn.Embedding) and id(embedding.weight) in tables:
                embedding.register_forward_pre_hook(refresh_lookup)

    def _group_of(self, param: torch.Tensor) -> dict:
        return next(g for g in self.param_groups if any(p is param for p in g["params"]))

    @staticmethod
    def _bring_up_to_date(param: torch.Tensor, state: dict, rows: torch.Tensor,
                          group: dict) -> None:
        """Apply the pending idle steps of `rows` [U] through the last step taken."""
        beta1, beta2 = group["betas"]
        t = state["step"]
        last_step = state["last_step"]
        last = last_step.index_select(0, rows)
        # Rows never touched have zero moments (dense Adam never moved them either), and rows
        # updated by the last step have nothing pending.
        behind = ((last > 0) & (last < t)).nonzero().squeeze(1)
        if behind.numel() == 0:
            return
        if behind.numel() < rows.numel():
            rows, last = rows.index_select(0, behind), last.index_select(0, behind)
        moments = state["moments"].index_select(0, rows)
        m, v = moments[:, 0], moments[:, 1]
        w = param.index_select(0, rows)
        pending = state["pending"].index_select(0, last.long())
        move, eps_weighted = pending[:, 0], pending[:, 1]
        # ε enters idle step u as ε · √(1 − β2^u) / β2^((u−s)/2) next to √v_s: use its mean
        # over the steps, weighted by their moves. Without moves (a zero learning rate) any
        # positive ε will do: it keeps a row with zero moments at 0 / ε, not 0 / 0.
        eps_factor = torch.where(move > 0, eps_weighted / move.clamp_min(1e-300), 1.0)
        eps = (group["eps"] * eps_factor).to(w.dtype).unsqueeze(1)
        w.sub_(m / v.sqrt().add_(eps) * move.to(w.dtype).unsqueeze(1))
        idle = (t - last).to(w.dtype).unsqueeze(1)
        m.mul_(torch.pow(beta1, idle))
        v.mul_(torch.pow(beta2, idle))
        param.index_copy_(0, rows, w)
        state["moments"].index_copy_(0, rows, moments)
        last_step.index_fill_(0, rows, t)

    def load_state_dict(self, state_dict: dict) -> None:
        """torch casts every state tensor of a floating parameter to the parameter's dtype;
        these keep their own (float64 `pending`, int32 `last_step`), or a resumed run would
        not continue with the bits it stopped with."""
        saved = state_dict["state"]
        kept = {index: {key: value for key, value in saved[index].items()
                        if key in ("pending", "last_step")} for index in saved}
        super().load_state_dict(state_dict)
        params = [p for group in self.param_groups for p in group["params"]]
        order = [i for group in state_dict["param_groups"] for i in group["params"]]
        for index, param in zip(order, params):
            for key, value in kept.get(index, {}).items():
                self.state[param][key] = value.to(param.device)
