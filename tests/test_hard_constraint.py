"""The mixture-of-experts hard-constraint layer on a tiny heat equation written here."""

import pytest
import torch

from sciml.datasets.pde_constraint import PDEConstraint
from sciml.errors import ConvergenceError, SciMLError
from sciml.models import build_model
from sciml.models.hard_constraint import (ConstrainedModel, HardConstraintLayer, build_constrained_model,
                                          expert_of_points, shard_experts)
from sciml.solvers.levenberg_marquardt import STATUS, batched_jacobian

F64 = torch.float64
D = 0.5


class Heat(PDEConstraint):
    """``u_t = D lap u - cubic u^3`` on ``(t, *space)``; ``u`` given at t = 0 and on the spatial boundary.

    ``data["u"] (B, *grid)`` holds the condition values (read at the condition points).
    Central second differences in space and ``torch.gradient`` in time are exact on
    ``|x|^2 + 2 d D t``, so that field solves the discrete PDE exactly when ``cubic = 0``.
    """

    derivative_names = ("u", "u_t", "lap")

    def __init__(self, grid_shape, spacing, cubic=0.0):
        super().__init__(grid_shape, spacing)
        self.cubic = cubic

    def derivatives(self, f):
        lap = torch.zeros_like(f)
        for axis in range(1, self.ndim):
            dim, n, h = axis - self.ndim, self.grid_shape[axis], self.spacing[axis]
            inner = (f.narrow(dim, 2, n - 2) - 2 * f.narrow(dim, 1, n - 2) + f.narrow(dim, 0, n - 2)) / h ** 2
            edge = torch.zeros_like(f.narrow(dim, 0, 1))
            lap = lap + torch.cat([edge, inner, edge], dim=dim)
        return {"u": f, "u_t": torch.gradient(f, spacing=self.spacing[0], dim=-self.ndim)[0], "lap": lap}

    def pde_residual(self, values, data, index):
        return values["u_t"] - D * values["lap"] + self.cubic * values["u"] ** 3

    def condition_mask(self):
        mask = torch.zeros(self.grid_shape, dtype=torch.bool)
        mask[0] = True
        for axis in range(1, self.ndim):
            mask.index_fill_(axis, torch.tensor([0, self.grid_shape[axis] - 1]), True)
        return mask

    def condition_residual(self, values, data, index):
        flat = torch.zeros(len(index), dtype=torch.long, device=index.device)
        for axis, n in enumerate(self.grid_shape):
            flat = flat * n + index[:, axis]
        return values["u"] - data["u"].flatten(1)[:, flat]


def heat_problem(grid=(6, 12)):
    """Constraint, basis (1, N, *grid) whose span holds the exact solutions, and two exact solutions."""
    axes = torch.meshgrid(*[torch.linspace(0, 1, n, dtype=F64) for n in grid], indexing="ij")
    t, xs = axes[0], axes[1:]
    constraint = Heat(grid, [1 / (n - 1) for n in grid])
    square = sum(x ** 2 for x in xs)
    solution = square + 2 * len(xs) * D * t
    basis = [torch.ones_like(t), *xs, solution, t ** 2, t * xs[0] ** 3, torch.cos(2 * xs[0]) * (1 + t)]
    exact = torch.stack([solution + 0.3 * xs[0] - 1.0, solution - 0.7 * xs[-1] + 2.0])
    return constraint, torch.stack(basis)[None], exact


def layer_for(constraint, basis, **options):
    options = {"ridge": 1e-12, "damping": 0.0, "tol": 1e-12, **options}
    return HardConstraintLayer(constraint, n_basis=basis.shape[1], **options)


@pytest.mark.parametrize("grid,experts", [((6, 12), (1, 1)), ((6, 12), (1, 3)), ((6, 12), (2, 1)),
                                          ((4, 6, 6), (1, 2, 3))])
def test_recovers_exact_solution_global_and_moe(grid, experts):
    constraint, basis, exact = heat_problem(grid)
    layer = layer_for(constraint, basis, experts=experts)
    u = layer(basis.expand(2, *basis.shape[1:]), {"u": exact})
    torch.testing.assert_close(u, exact, rtol=0, atol=1e-8)
    record = layer.record
    assert record.converged.shape == (2, layer.n_experts) and record.converged.all(), record.message
    assert record.iterations.shape == record.residual.shape == (2, layer.n_experts)
    assert (record.residual < 1e-7).all()


def test_global_layer_is_the_global_least_squares_solve():
    constraint, basis, exact = heat_problem()
    torch.manual_seed(0)
    basis = basis + 0.1 * torch.randn_like(basis)  # exact solution no longer in the span
    ridge, weight = 1e-3, 2.0
    layer = layer_for(constraint, basis, ridge=ridge, condition_weight=weight)
    u = layer(basis, {"u": exact[:1]})

    d = {k: v[0].flatten(1) for k, v in constraint.derivatives(basis).items()}  # (N, G)
    mask = constraint.condition_mask().flatten()
    pde_rows = (d["u_t"] - D * d["lap"])[:, ~mask].T
    cond_rows = d["u"][:, mask].T
    n = basis.shape[1]
    A = torch.cat([pde_rows, weight ** 0.5 * cond_rows, ridge ** 0.5 * torch.eye(n, dtype=F64)])
    rhs = torch.cat([torch.zeros(len(pde_rows), dtype=F64), weight ** 0.5 * exact[0].flatten()[mask],
                     torch.zeros(n, dtype=F64)])
    w = torch.linalg.lstsq(A, rhs[:, None]).solution[:, 0]
    torch.testing.assert_close(u[0], torch.einsum("n...,n->...", basis[0], w), rtol=0, atol=1e-10)


def test_local_conditions_experts_see_only_their_block():
    constraint, basis, exact = heat_problem()
    with pytest.raises(SciMLError, match="hold no initial or boundary condition point"):
        layer_for(constraint, basis, experts=(2, 3), conditions="local")  # the late middle block touches none
    layer = layer_for(constraint, basis, experts=(2, 3), conditions="local", allow_free_experts=True)
    u = layer(basis, {"u": exact[:1]})
    owner = expert_of_points((6, 12), (2, 3))
    free, early = owner == 4, owner < 3                  # late middle block: PDE + ridge only, so u = 0 there
    assert u[0][free].abs().max() < 1e-8 and exact[0][free].abs().min() > 0.04
    torch.testing.assert_close(u[0][early], exact[0][early], rtol=0, atol=1e-8)  # blocks holding the IC


def test_global_conditions_tie_every_expert_to_all_condition_points():
    constraint, basis, exact = heat_problem()
    layer = layer_for(constraint, basis, experts=(2, 3))  # default: conditions="global", no expert is free
    n_conditions = int(constraint.condition_mask().sum())
    assert layer.config["conditions"] == "global" and layer.cond_index.shape == (6, n_conditions)
    assert (layer.cond_weight == 1).all() and (layer.cond_index == layer.cond_index[:1]).all()
    u = layer(basis, {"u": exact[:1]})
    assert layer.record.converged.all(), layer.record.message
    torch.testing.assert_close(u, exact[:1], rtol=0, atol=1e-8)  # the late middle block (expert 4) included

    # an expert's expansion is judged at condition points outside its block: with data that no single
    # expansion in the span fits, the global-conditions block differs from the local-conditions one
    torch.manual_seed(0)
    noisy = exact[:1] + 0.05 * torch.randn_like(exact[:1])
    local = layer_for(constraint, basis, experts=(1, 3), conditions="local")(basis, {"u": noisy})
    spread = layer_for(constraint, basis, experts=(1, 3))(basis, {"u": noisy})
    assert (local - spread)[0, :, 4:8].abs().max() > 1e-3

    capped = layer_for(constraint, basis, experts=(1, 3), condition_points=10, seed=2)
    assert capped.cond_index.shape == (3, 10) and len(set(map(tuple, capped.cond_index.tolist()))) == 3
    assert torch.isin(capped.cond_index, layer.cond_index[0]).all()
    torch.testing.assert_close(capped(basis, {"u": exact[:1]}), exact[:1], rtol=0, atol=1e-8)
    with pytest.raises(SciMLError, match="conditions"):
        layer_for(constraint, basis, conditions="nearby")


@pytest.mark.parametrize("grid,experts", [((6, 12), (1, 3)), ((4, 6, 6), (2, 1, 3))])
def test_pointwise_jacobian_equals_forward_mode_jacobian(grid, experts):
    constraint, basis, exact = heat_problem(grid)
    constraint.cubic = 0.7  # nonlinear pointwise residual: dr/dv depends on w
    layer = layer_for(constraint, basis, experts=experts, condition_weight=2.0, points_per_expert=4)
    torch.manual_seed(0)
    basis = torch.cat([basis, basis + 0.1 * torch.randn_like(basis)])
    derivatives = {k: v.flatten(2) for k, v in constraint.derivatives(basis).items()}
    residual_fn, jacobian_fn, params = layer._residual_function(derivatives, {"u": exact},
                                                                torch.arange(layer.n_experts))
    w = torch.randn(2 * layer.n_experts, basis.shape[1], dtype=F64)
    fast = jacobian_fn(w, *params)
    assert fast.shape == (2 * layer.n_experts, 4 + layer.cond_index.shape[1], basis.shape[1])
    torch.testing.assert_close(fast, batched_jacobian(residual_fn, w, params), rtol=1e-12, atol=1e-12)


def test_points_per_expert_subset_is_seeded():
    constraint, basis, exact = heat_problem()
    first = layer_for(constraint, basis, experts=(1, 2), points_per_expert=7, seed=3)
    again = layer_for(constraint, basis, experts=(1, 2), points_per_expert=7, seed=3)
    other = layer_for(constraint, basis, experts=(1, 2), points_per_expert=7, seed=4)
    assert first.pde_index.shape == (2, 7) and torch.equal(first.pde_index, again.pde_index)
    assert not torch.equal(first.pde_index, other.pde_index)
    assert (expert_of_points((6, 12), (1, 2)).flatten()[first.pde_index] == torch.arange(2)[:, None]).all()
    torch.testing.assert_close(first(basis, {"u": exact[:1]}), exact[:1], rtol=0, atol=1e-8)


def test_layer_gradcheck_through_nonlinear_pde():
    constraint, basis, exact = heat_problem((4, 6))
    constraint.cubic = 0.5
    basis = basis[:, :4].clone().requires_grad_(True)
    layer = layer_for(constraint, basis, experts=(1, 2), ridge=1e-4, damping=1e-3, tol=1e-14, max_iterations=200)

    def solve(b):
        u = layer(b, {"u": exact[:1]})
        assert layer.record.converged.all(), layer.record.message
        return u

    assert torch.autograd.gradcheck(solve, (basis,), eps=1e-6, atol=1e-6, rtol=1e-5, fast_mode=True)


def test_failures_are_reported_or_raised():
    constraint, basis, exact = heat_problem()
    data = exact[:1].clone()
    data[0, :, -1] = float("nan")  # the right boundary values belong to the last expert only
    layer = layer_for(constraint, basis, experts=(1, 3), conditions="local")
    u = layer(basis, {"u": data})
    assert layer.record.converged.tolist() == [[True, True, False]]
    assert STATUS[int(layer.record.status[0, 2])] == "non_finite"
    assert "sample 0 expert 2 (non-finite residual or Jacobian)" in layer.record.message
    assert torch.isfinite(u).all()                             # the failed block keeps w0 = 0, nothing zeroed
    torch.testing.assert_close(u[0, :, :8], exact[0, :, :8], rtol=0, atol=1e-8)

    # there is no gradient through a non-finite expert: the backward says so instead of inventing one
    leaf = basis.clone().requires_grad_(True)
    with pytest.raises(ConvergenceError, match=r"Hessian of problems \[2\] is singular or not finite"):
        layer(leaf, {"u": data}).sum().backward()

    strict = layer_for(constraint, basis, experts=(1, 3), conditions="local", on_failure="raise")
    with pytest.raises(ConvergenceError, match="2/3 expert solves converged"):
        strict(basis, {"u": data})
    capped = layer_for(constraint, basis, damping=1e-3, max_iterations=1, on_failure="raise")
    with pytest.raises(ConvergenceError, match="hit max_iterations"):
        capped(basis, {"u": exact[:1]})


def test_soft_mode_same_points_same_residual():
    constraint, basis, exact = heat_problem()
    layer = layer_for(constraint, basis, experts=(1, 3), mode="soft", condition_weight=3.0)
    u = layer(torch.cat([exact[:1, None], basis[:, 1:]], dim=1), {"u": exact[:1]})
    assert layer.record is None and torch.equal(u, exact[:1])
    assert float(layer.soft_residual_loss(exact[:1], {"u": exact[:1]})) < 1e-20

    torch.manual_seed(0)
    guess = (exact[:1] + 0.1 * torch.randn_like(exact[:1])).requires_grad_(True)
    loss = layer.soft_residual_loss(guess, {"u": exact[:1]})
    mask = constraint.condition_mask()
    pde = constraint.residual_on_grid(guess, {})[0][~mask].square().mean()
    cond = (guess - exact[:1])[0][mask].square().mean()
    torch.testing.assert_close(loss, pde + 3.0 * cond)
    loss.backward()
    assert torch.isfinite(guess.grad).all() and guess.grad.abs().sum() > 0


def test_constrained_fno_trains_end_to_end():
    constraint, _, exact = heat_problem((8, 8))
    torch.manual_seed(0)
    model = build_constrained_model(constraint, n_basis=5, model_options={"n_modes": 4, "width": 8, "n_layers": 1},
                                    experts=(1, 2), ridge=1e-6)
    assert model.config["base"]["name"] == "fno" and model.config["layer"]["experts"] == [1, 2]
    u = model(torch.randn(2, 1, 8, 8), {"u": exact.float()})
    assert u.shape == (2, 8, 8) and u.dtype == torch.float32 and model.record.converged.shape == (2, 2)
    (u - exact.float()).square().mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_bad_input_is_refused_at_construction():
    constraint, basis, _ = heat_problem()
    with pytest.raises(SciMLError, match=r"experts \[1, 5\] do not divide the grid \[6, 12\]: axis 1 has 12 points"):
        HardConstraintLayer(constraint, 7, experts=(1, 5))
    with pytest.raises(SciMLError, match="give one block count per axis"):
        HardConstraintLayer(constraint, 7, experts=(2,))
    with pytest.raises(SciMLError, match="exceeds the"):
        HardConstraintLayer(constraint, 7, experts=(1, 3), points_per_expert=100)
    with pytest.raises(SciMLError, match="mode"):
        HardConstraintLayer(constraint, 7, mode="medium")

    class Outside(Heat):
        def condition_index(self):
            return torch.tensor([[0, 3], [2, 12]])

    with pytest.raises(SciMLError, match=r"condition point \[2, 12\] lies outside the grid \[6, 12\]"):
        HardConstraintLayer(Outside((6, 12), (0.2, 1 / 11)), 7)

    layer = HardConstraintLayer(constraint, 7)
    base = build_model("fno", in_channels=1, out_channels=6, n_modes=4, width=4, n_layers=1)
    with pytest.raises(SciMLError, match="outputs 6 channels but the constraint layer expects n_basis = 7"):
        ConstrainedModel(base, layer)
    with pytest.raises(SciMLError, match="3-D"):
        ConstrainedModel(build_model("fno", in_channels=1, out_channels=7, n_modes=[4, 4, 4], width=4), layer)
    with pytest.raises(SciMLError, match="basis has 6 functions"):
        layer(basis[:, :6], {"u": basis[:, 0]})
    with pytest.raises(SciMLError, match="does not fit the constraint"):
        layer(basis[..., :10], {"u": basis[:, 0]})


def test_shard_experts_partitions_contiguously():
    for n in range(9):
        for world in range(1, 5):
            shares = [shard_experts(n, world, r) for r in range(world)]
            assert [e for s in shares for e in s] == list(range(n))
            sizes = [len(s) for s in shares]
            assert max(sizes) - min(sizes) <= 1 and sizes == sorted(sizes, reverse=True)
    with pytest.raises(SciMLError, match="outside a world"):
        shard_experts(4, 2, 2)


def test_resample_draws_fresh_points_in_training_and_fixed_points_in_eval():
    constraint, basis, exact = heat_problem()
    layer = layer_for(constraint, basis, experts=(1, 2), points_per_expert=7, seed=3, resample=True)
    draws = [layer._collocation()[0] for _ in range(3)]
    assert not torch.equal(draws[0], draws[1]) and not torch.equal(draws[1], draws[2])
    pool = ~constraint.condition_mask().flatten()
    for index in draws:  # P distinct non-condition points of each expert's own block
        assert index.shape == (2, 7) and pool[index].all()
        assert (expert_of_points((6, 12), (1, 2)).flatten()[index] == torch.arange(2)[:, None]).all()
        assert all(len(set(row)) == 7 for row in index.tolist())
    again = layer_for(constraint, basis, experts=(1, 2), points_per_expert=7, seed=3, resample=True)
    assert torch.equal(again._collocation()[0], draws[0])  # seeded
    torch.testing.assert_close(layer(basis, {"u": exact[:1]}), exact[:1], rtol=0, atol=1e-8)
    layer.eval()
    assert torch.equal(layer._collocation()[0], layer.pde_index) and torch.equal(layer._collocation()[0],
                                                                                  layer._collocation()[0])
    with pytest.raises(SciMLError, match="set points_per_expert"):
        layer_for(constraint, basis, resample=True)


def test_gelu_basis_activation():
    constraint, _, exact = heat_problem((8, 8))
    torch.manual_seed(0)
    model = build_constrained_model(constraint, n_basis=5, model_options={"n_modes": 4, "width": 8, "n_layers": 1},
                                    experts=(1, 2), ridge=1e-6, basis_activation="gelu")
    x = torch.randn(1, 1, 8, 8)
    assert model.config["basis_activation"] == "gelu"
    expected = model.layer(torch.nn.functional.gelu(model.base(x)), {"u": exact[:1].float()})
    torch.testing.assert_close(model(x, {"u": exact[:1].float()}), expected)
    plain = ConstrainedModel(model.base, model.layer)
    assert not torch.allclose(plain(x, {"u": exact[:1].float()}), expected)
    with pytest.raises(SciMLError, match="basis_activation"):
        ConstrainedModel(model.base, model.layer, basis_activation="relu")
