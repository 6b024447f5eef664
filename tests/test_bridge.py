"""The bridge study at a tiny size: its helpers against exact answers, its caching, its refusals, and part
(a) on a GPU against the CPU. The real fast preset runs as ``examples/kernel_meets_deep.py --fast`` in
``tests/test_smoke.py``."""
import math

import numpy as np
import pytest
import torch

from deepdistill.studies import bridge
from deepdistill.studies.bridge import BridgePreset, get_preset, log_log_slope, refine_grid_argmin, run_bridge_study

TINY = BridgePreset(name="tiny", n_train=16, n_val=8, n_test=20, exact_width=16, exact_n_train=8, exact_steps=3,
                    widths=(16, 64), seeds=(0,), width_steps=2, grid=(0.0, 2.0, 4.0, 6.0), standard_widths=(8,),
                    adam_width=16, adam_max_steps=20, adam_patience=10, toy_width=32, toy_steps=3)


def test_refine_grid_argmin_is_exact_for_a_quadratic():
    grid = np.array([0.0, 0.5, 1.0, 1.5, 2.0, 3.0])
    for vertex in (1.23, 0.1, 2.9, 3.4, -0.3):
        got = refine_grid_argmin(grid, 2.0 * (grid - vertex) ** 2 + 0.7)
        assert got["vertex"] == pytest.approx(vertex, rel=1e-10, abs=1e-12)
        assert got["at_edge"] == (vertex < 0.25 or vertex > 2.5)
    concave = refine_grid_argmin([0.0, 1.0, 2.0], [1.0, 0.0, 1.5])   # a noisy V: the parabola still opens up
    assert concave["argmin"] == 1.0 and 0.0 < concave["vertex"] < 2.0
    assert refine_grid_argmin([0.0, 1.0, 2.0], [0.0, 1.0, 1.5])["vertex"] == 0.0   # opens down: the grid's argmin
    with pytest.raises(ValueError, match="grid"):
        refine_grid_argmin([0.0, 1.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="grid"):
        refine_grid_argmin([0.0, 2.0, 1.0], [1.0, 2.0, 3.0])


def test_log_log_slope_of_a_power_law():
    w = np.array([64, 256, 1024, 4096])
    assert log_log_slope(w, 3.0 * w ** -0.5) == pytest.approx(-0.5, rel=1e-12)


@pytest.mark.parametrize("kw, match", [({"widths": (0, 64)}, "widths"), ({"widths": (64,)}, "two widths"),
                                       ({"exact_width": -1}, "exact_width"), ({"ridge": 0.0}, "ridge"),
                                       ({"ridge": -1.0}, "ridge"), ({"toy_ridge": 0}, "ridge"),
                                       ({"grid": (0.0, 1.0)}, "grid"), ({"standard_widths": (16, 0)}, "standard_widths")])
def test_preset_refuses_bad_widths_and_ridges(kw, match):
    with pytest.raises(ValueError, match=match):
        BridgePreset(**kw)


def test_unknown_preset_part_and_device():
    with pytest.raises(ValueError, match="valid names"):
        get_preset("huge")
    with pytest.raises(ValueError, match="valid parts"):
        run_bridge_study(None, TINY, parts=["exact", "everything"])
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA"):
            run_bridge_study(None, TINY, parts=["exact"], device="cuda")


def test_full_preset_is_the_readme_study():
    full = get_preset("full")
    assert full.widths[0] == 64 and full.widths[-1] == 4096 and len(full.seeds) >= 3 and len(full.grid) >= 11
    assert full.exact_weights == (0.0, 0.25, 0.5, 1.0) and full.exact_steps == 5 and full.width_steps == 5


@pytest.fixture(scope="module")
def tiny_study(tmp_path_factory):
    out = tmp_path_factory.mktemp("bridge")
    return out, run_bridge_study(out, TINY, include_mnist1d=False)


def test_tiny_study_has_every_part_and_must_show(tiny_study):
    out, study = tiny_study
    assert set(study["parts"]) == set(bridge.PARTS)
    exact = study["parts"]["exact"]
    assert exact["max_relative_difference"] <= exact["threshold"] <= TINY.exact_tolerance   # (a) holds at any size
    assert np.shape(exact["relative_difference"]["test"]) == (4, 3)
    width = study["parts"]["width"]
    assert np.shape(width["deviation"]) == (2, 1, 1, 2)                       # widths, seeds, weights, steps
    assert width["slope"] == pytest.approx(log_log_slope(TINY.widths, width["mean_deviation"]))
    for row in width["weights"]:
        # the kernel's optimum is the vertex of its quadratic, which the stored risks follow exactly
        assert refine_grid_argmin(TINY.grid, row["kernel_risk"])["vertex"] == pytest.approx(row["kernel_gt_weight"])
    cases = [r["case"] for r in study["parts"]["parted"]["rows"]]
    assert any("standard" in c for c in cases) and any("Adam" in c for c in cases)
    toy = study["parts"]["toy"]
    assert np.shape(toy["loss"]["deep"]) == (2, 3) and toy["loss"]["deep"][0][0] == toy["loss"]["deep"][1][0]
    assert [r["must_show"][:3] for r in study["must_show"]] == ["(a)", "(b)", "(c)"]
    table = bridge.format_must_shows(study["must_show"])
    verdicts = [line.split()[-1] for line in table.splitlines()[1::2]]          # one verdict per must-show row
    assert verdicts == ["PASS" if r["passed"] else "FAIL" for r in study["must_show"]]


def test_a_finished_study_is_read_back_not_recomputed(tiny_study, monkeypatch):
    out, study = tiny_study

    def boom(*a, **k):
        raise AssertionError("recomputed")

    for name in ("measure_exact", "measure_width", "measure_parted", "measure_toy", "_width_cell", "_adam_cell"):
        monkeypatch.setattr(bridge, name, boom)
    again = run_bridge_study(out, TINY, include_mnist1d=False)
    assert again["parts"] == study["parts"]
    assert bridge.read_bridge_study(out, TINY, include_mnist1d=False)["must_show"] == study["must_show"]
    # another setting is another study: nothing stored for it
    assert bridge.read_bridge_study(out, TINY, include_mnist1d=True) is None


@pytest.mark.gpu
def test_part_a_on_cuda_matches_the_cpu():
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    from deepdistill.engine.lazy import full_batch_self_distillation
    from deepdistill.core.linearize import linearize
    from deepdistill.core.regression import sine

    gpu = bridge.measure_exact(TINY, device="cuda")
    assert gpu["max_relative_difference"] <= gpu["threshold"]
    cpu = bridge.measure_exact(TINY, device="cpu")
    np.testing.assert_allclose(gpu["relative_difference"]["test"], cpu["relative_difference"]["test"], rtol=0, atol=1e-6)
    data = sine(TINY.exact_n_train, TINY.noise, n_test=TINY.n_test, seed=TINY.data_seed)
    outputs = {}
    for device in ("cpu", "cuda"):
        net = bridge._network(TINY.exact_width, 0, in_features=1, input_std=TINY.input_std, activation=TINY.activation,
                              device=device)
        path = full_batch_self_distillation(linearize(net, subtract_initial=True), bridge._tensor(data.x_train, device),
                                            bridge._tensor(data.y_train, device), ridge=TINY.ridge, gt_weights=[0.0, 0.5],
                                            steps=3, evaluate={"test": bridge._tensor(data.x_test, device)})
        outputs[device] = path.evaluations["test"].cpu().numpy()
    scale = np.abs(outputs["cpu"]).max()
    np.testing.assert_allclose(outputs["cuda"], outputs["cpu"], rtol=0, atol=1e-6 * scale)
    assert math.isfinite(scale) and scale > 0

