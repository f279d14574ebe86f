"""The model reproduces the published figures of targets/calibration/*.toml.

Each row runs its program over its capture (the workload), then the target's model
at the ports' line rate.  Fitted rows check that the fit holds; predicted rows are
the model's own forecast with those fits.  A row with ``known_miss`` is a forecast
the model is known to get wrong (it says why): it is an expected failure, strict, so
that a model change that fixes it shows up and the docs' table gets updated.
"""
from __future__ import annotations

import pytest

from xsim.nic.calibration import figures, reproduce

FIGURES = figures()


def _param(fig):
    marks = [pytest.mark.xfail(strict=True, reason=fig.known_miss)] if fig.known_miss else []
    return pytest.param(fig, id=f"{fig.target}:{fig.figure}", marks=marks)


@pytest.mark.parametrize("fig", [_param(f) for f in FIGURES])
def test_figure_within_tolerance(fig) -> None:
    value = reproduce(fig)
    assert abs(value - fig.paper) <= fig.tolerance * fig.paper, \
        f"{fig.figure}: xsim {value:.2f} vs paper {fig.paper} ({fig.role})"


def test_each_paper_has_fits_and_predictions_apart() -> None:
    """Every fitted row names the parameter it fits, and that parameter is listed as
    fitted in the target's profile; the XDP paper keeps predictions of its own."""
    from xsim.timing.profile import find_target
    for fig in FIGURES:
        if fig.role == "fitted":
            assert fig.fits in find_target(fig.target).fitted, fig
    xdp = [f for f in FIGURES if f.file == "xdp-paper.toml"]
    assert sum(f.role == "predicted" for f in xdp) >= 5


def test_scaling_comes_from_the_cores_not_a_table() -> None:
    """More cores give more throughput, and one core is core-bound: the figures move
    with the model's inputs."""
    from xsim.nic.calibration import workload
    from xsim.nic.study import run_study
    from xsim.timing.profile import find_target
    fig = next(f for f in FIGURES if f.program.endswith("katran.o"))
    host = find_target("host-e5-1650v4")
    one = run_study(host, workload(fig), cores=1, packets=5000)
    three = run_study(host, workload(fig), cores=3, packets=5000)
    assert one.bottleneck == "cores" and three.mpps > 2.5 * one.mpps


def test_the_drop_path_row_runs_only_the_drop_path() -> None:
    """The firewall row that assumes the drop path: every frame of its capture is
    dropped after one lookup (a miss), whether the key's ports needed a swap or not."""
    from xsim.nic.calibration import workload
    fig = next(f for f in FIGURES if f.program.endswith("firewall_ports.o"))
    w = workload(fig)
    assert w.verdict_counts() == {"drop": len(w)}
    assert [p.helpers for p in w.paths] == [{1: 1}] * len(w.paths)   # the lookup alone
    assert {p.insns for p in w.paths} <= set(range(40, 50))


def test_calibration_outside_a_source_tree_says_so(tmp_path, monkeypatch) -> None:
    """The figures' programs are the repository's examples: without them, a clear error."""
    from xsim.nic import calibration
    from xsim.timing.profile import ProfileError
    monkeypatch.setattr(calibration, "ROOT", tmp_path)
    monkeypatch.setattr(calibration, "_WORKLOADS", {})
    with pytest.raises(ProfileError, match="calibration runs in a source checkout"):
        reproduce(figures()[0], packets=1000)
