"""When the report reuses a trained model instead of training it: the manifest's recorded command decides."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rich.console import Console

from twin_service.report.pipeline import Pipeline, _options
from twin_service.report.plan import BUDGETS, FIGURES, Reductions, parse_days
from twin_service.report.planner import make_plan
from twin_service.scenario.folder import Scenario


def test_a_recorded_command_is_read_option_by_option() -> None:
    opts = _options("twin-service train dm-mappo --recordings a.npz,b.npz --arch paper --no-mask --hp x=1 --hp y=2")
    assert opts == {"--recordings": ["a.npz,b.npz"], "--arch": ["paper"], "--no-mask": ["true"], "--hp": ["x=1", "y=2"]}


@pytest.fixture
def pipeline(tmp_path: Path) -> Pipeline:
    plan = make_plan(BUDGETS["full"], tmp_path / "work", tmp_path / "models")
    return Pipeline(plan, tmp_path / "out", [], None, Console(quiet=True))


def _model(pipeline: Pipeline, name: str, command: str, **extra: object) -> None:
    folder = Path(pipeline.plan.models[name].folder)
    folder.mkdir(parents=True)
    manifest = {"name": name, "command": command, "scenario_param_hash": Scenario.load("city").params.param_hash}
    (folder / "manifest.json").write_text(json.dumps({**manifest, **extra}))
    (folder / "weights.safetensors").write_bytes(b"weights")


def test_a_model_is_reused_only_when_its_command_carries_what_the_plan_needs(pipeline: Pipeline) -> None:
    assert pipeline.reusable(pipeline.plan.models["mappo-paper-city"]) == (False, "not trained yet")
    _model(pipeline, "mappo-paper-city", "twin-service train dm-mappo --arch paper --total-ticks 4096")
    ok, why = pipeline.reusable(pipeline.plan.models["mappo-paper-city"])
    assert not ok and "4096 < 49152" in why  # the full budget trains the paper's actor for longer
    _model(pipeline, "masac-nomask-city", "twin-service train masac --total-ticks 4096")
    ok, why = pipeline.reusable(pipeline.plan.models["masac-nomask-city"])
    assert not ok and "lacks --no-mask" in why
    _model(pipeline, "masac-city", "twin-service train masac --no-mask")
    assert not pipeline.reusable(pipeline.plan.models["masac-city"])[0]  # the plan's MASAC has the mask


def test_training_days_are_compared_as_files_however_they_were_spelled(pipeline: Pipeline) -> None:
    days = " ".join(f"--recordings data/recordings/city-s{d}.npz" for d in (6, 5, 4, 3, 2, 1))
    _model(pipeline, "af-marl-city-full-s1", f"twin-service train af-marl {days} --seed 1")
    assert pipeline.reusable(pipeline.plan.models["af-marl-city-full-s1"]) == (True, "manifest satisfies the plan")
    _model(pipeline, "af-marl-city-full-s2", "twin-service train af-marl --recordings data/recordings/city-s1.npz")
    ok, why = pipeline.reusable(pipeline.plan.models["af-marl-city-full-s2"])
    assert not ok and "city-s1.npz" in why  # the quick budget's models (day 1) do not stand in for the full one's


def test_a_model_made_on_other_scenario_parameters_is_not_reused(pipeline: Pipeline) -> None:
    _model(pipeline, "masac-city", "twin-service train masac", scenario_param_hash="0000000000000000")
    ok, why = pipeline.reusable(pipeline.plan.models["masac-city"])
    assert not ok and "scenario parameters 0000000000000000" in why


def test_a_model_trained_on_changed_parameters_is_checked_against_those(pipeline: Pipeline) -> None:
    from twin_service.config import with_overrides

    city = Scenario.load("city")
    changed = with_overrides(city.params, {"offload": {"deadline_s": [1.0, 1.0]}}).param_hash
    command = "twin-service train af-marl --set 'offload.deadline_s=[1, 1]' --hp gamma=0.0"
    days = ",".join(f"data/recordings/city-s{d}.npz" for d in range(1, 7))
    _model(pipeline, "sweep-af-marl-tn1", f"{command} --recordings {days}", scenario_param_hash=changed)
    assert pipeline.reusable(pipeline.plan.models["sweep-af-marl-tn1"]) == (True, "manifest satisfies the plan")


def test_days_give_a_part_its_own_conditions_on_those_days_only(tmp_path: Path) -> None:
    red = Reductions(parse_days(["fig7=8", "fig8=8,9"]), frozenset())
    plan = make_plan(BUDGETS["full"], tmp_path / "work", tmp_path / "models", red)
    for part, days in (("fig7", (8,)), ("fig8", (8, 9))):
        for arm in plan.figures[part].arms:
            assert plan.days_of(arm.condition) == days, (part, arm)
    # the other parts keep the budget's days, and the whole conditions stay as they were
    assert {plan.days_of(a.condition) for a in plan.figures["fig9"].arms} == {(8, 9, 10, 11, 12)}
    assert plan.days_of("city") == (8, 9, 10, 11, 12)
    # a reduced figure's days are not recorded for its whole conditions (rural days 10-12 are not needed)
    assert not any("rural-s1" in p for p in plan.recordings)
    assert red.options() == ["--days", "fig7=8", "--days", "fig8=8,9"]
    with pytest.raises(ValueError, match="fig7=3: city-migration-40mb is evaluated on days 8, 9"):
        make_plan(BUDGETS["full"], tmp_path, tmp_path, Reductions({"fig7": (3,)}))
    for bad in ("fig99=8", "fig7", "fig7=x", "table2=8", "fig7="):
        with pytest.raises(ValueError, match="--days"):
            parse_days([bad])


def test_as_committed_uses_a_model_as_it_is_and_never_trains_a_missing_one(tmp_path: Path) -> None:
    plan = make_plan(BUDGETS["full"], tmp_path / "work", tmp_path / "models", Reductions({}, frozenset({"mlp"})))
    pipeline = Pipeline(plan, tmp_path / "out", [], None, Console(quiet=True))
    _model(pipeline, "mappo-paper-city", "twin-service train dm-mappo --arch paper --total-ticks 4096")
    assert pipeline.ensure_model("mappo-paper-city")  # not reusable (4096 ticks) but used as it is, not trained
    status = pipeline.report.models["mappo-paper-city"]
    assert status.status == "as committed" and "4096 < 49152" in status.note
    assert not pipeline.ensure_model("dm-mappo-city")  # needed by mlp, absent: missing, not trained
    assert pipeline.report.models["dm-mappo-city"].status == "missing"
    assert pipeline.available("least-loaded", "mappo-paper-city") and not pipeline.available("dm-mappo-city")
    # a part not named keeps the budget's rule: fig9's no-mask MASAC would be trained
    assert not pipeline.as_committed("masac-nomask-city")


def test_a_whole_report_drops_stale_results_but_one_under_days_keeps_them(tmp_path: Path) -> None:
    def pipeline(reductions: Reductions) -> Pipeline:
        plan = make_plan(BUDGETS["full"], tmp_path / "work", tmp_path / "models", reductions)
        p = Pipeline(plan, tmp_path / "out", list(FIGURES), None, Console(quiet=True))
        p.report.runs.put("an older model's run", [{"episode": 0}])
        return p

    reduced = pipeline(Reductions(parse_days(["fig6=8"])))
    assert reduced.drop_stale() == 0 and reduced.report.runs.get("an older model's run")
    whole = pipeline(Reductions())
    assert whole.drop_stale() == 1 and whole.report.runs.get("an older model's run") is None
