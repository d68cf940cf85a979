"""``twin-service report``: make (or reuse) what every figure needs, evaluate, and write the report.

Order of work for each requested part of the report: the recordings it needs (``twin-service record``), the
models (reused when the manifest in ``models/NAME`` satisfies the plan, else ``twin-service train ...``), then
the evaluation runs not yet stored, then the report is rewritten (so an interrupted report keeps what it had).
Every step runs the project's own command in this process (its manifest records the exact command); evaluation
runs call :func:`twin_service.envs.evaluate.run_day` directly, one policy pair and day at a time, so that each is
stored as soon as it is done. A failed step is reported in the document and the other parts go on.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rich.console import Console

from twin_service.config import REPO_ROOT
from twin_service.report.plan import (
    AVAILABLE,
    BUDGETS,
    FIGURES,
    PAPER_A_FIGURES,
    PAPER_B_FIGURES,
    Condition,
    ModelSpec,
    Plan,
    Reductions,
)
from twin_service.report.planner import make_plan
from twin_service.report.state import ModelStatus, Report
from twin_service.report.store import KeyedRows, exclusive, file_sha256, key_of, policy_fingerprint

RUNS_FILE = "runs.csv"
PREDICTOR_FILE = "predictor_blocks.csv"


class StepError(RuntimeError):
    """A step of the report failed (its message goes into the report)."""


def expand_only(only: str | None) -> list[str]:
    """``--only``: figure names and/or ``paper-a`` / ``paper-b`` -> the parts, in report order."""
    if not only:
        return list(FIGURES)
    wanted: set[str] = set()
    for word in (w.strip() for w in only.split(",")):
        if not word:
            continue
        if word == "paper-a":
            wanted |= set(PAPER_A_FIGURES)
        elif word == "paper-b":
            wanted |= set(PAPER_B_FIGURES)
        elif word in FIGURES:
            wanted.add(word)
        else:
            raise ValueError(f"--only {word!r}: choose from paper-a, paper-b, {', '.join(FIGURES)}")
    return [f for f in FIGURES if f in wanted]


@contextlib.contextmanager
def _in_repo(models_dir: Path) -> Iterator[None]:
    """Commands see the repository as their working folder and the plan's models folder as TWIN_MODELS_DIR."""
    cwd, env = os.getcwd(), os.environ.get("TWIN_MODELS_DIR")
    os.chdir(REPO_ROOT)
    os.environ["TWIN_MODELS_DIR"] = str(models_dir)
    try:
        yield
    finally:
        os.chdir(cwd)
        if env is None:
            os.environ.pop("TWIN_MODELS_DIR", None)
        else:
            os.environ["TWIN_MODELS_DIR"] = env


CommandRunner = Callable[[list[str]], Any]
"""Runs ``twin-service ARGS`` in this process and returns its exit code; the CLI's ``report`` command gives it
(``twin_service/report/`` never imports the CLI)."""


def run_command(runner: CommandRunner | None, args: list[str]) -> None:
    """``twin-service ARGS`` in this process (``sys.argv`` as a shell would set it: manifests record it)."""
    import click

    if runner is None:
        raise StepError(f"twin-service {shlex.join(args)}: no command runner was given to the report")
    argv = sys.argv
    sys.argv = ["twin-service", *args]
    try:
        code = runner(args)
    except click.ClickException as exc:
        raise StepError(f"twin-service {shlex.join(args)}: {exc.format_message()}") from exc
    except SystemExit as exc:
        code = exc.code
    finally:
        sys.argv = argv
    if code not in (None, 0):
        raise StepError(f"twin-service {shlex.join(args)} exited with {code} (its message is above)")


def _options(command: str) -> dict[str, list[str]]:
    """A recorded command's options: ``--name`` -> its values (a flag: ``["true"]``)."""
    words = shlex.split(command)
    found: dict[str, list[str]] = {}
    i = 0
    while i < len(words):
        w = words[i]
        if w.startswith("--"):
            name, eq, value = w.partition("=")
            if eq:
                found.setdefault(name, []).append(value)
            elif i + 1 < len(words) and not words[i + 1].startswith("--"):
                found.setdefault(name, []).append(words[i + 1])
                i += 1
            else:
                found.setdefault(name, []).append("true")
        i += 1
    return found


class Pipeline:
    def __init__(
        self, plan: Plan, out: Path, parts: list[str], lock: Path | None, console: Console,
        runner: CommandRunner | None = None,
    ) -> None:  # fmt: skip
        self.plan = plan
        self.runner = runner
        self.lock = lock
        self.console = console
        self.report = Report(
            plan, out, parts, KeyedRows(out / RUNS_FILE), KeyedRows(out / PREDICTOR_FILE),
            command="twin-service " + shlex.join(sys.argv[1:]) if sys.argv[1:] else "",
        )  # fmt: skip
        self._scenarios: dict[tuple[str, str], Any] = {}

    # ---- recordings -----------------------------------------------------------------------------------
    def ensure_recording(self, path: str) -> None:
        spec = self.plan.recordings[path]
        full = REPO_ROOT / path
        if not full.is_file():
            if spec.scenario == self.plan.hamburg_dir:
                self.ensure_hamburg()
            self.console.print(f"[bold]record[/] {path}")
            with exclusive(self.lock), _in_repo(self.plan.models_dir):
                full.parent.mkdir(parents=True, exist_ok=True)
                run_command(self.runner, spec.command())
        self.report.recordings[path] = file_sha256(full)

    def ensure_hamburg(self) -> None:
        folder = REPO_ROOT / str(self.plan.hamburg_dir)
        if (folder / "params.toml").is_file():
            return
        source = REPO_ROOT.parent / "shared" / "scenarios" / "tavf-hamburg" / "run_simulation.sumocfg"
        if not source.is_file():
            source = (
                Path(os.environ.get("TWIN_SHARED_DIR", "/work/shared"))
                / "scenarios/tavf-hamburg/run_simulation.sumocfg"
            )
        if not source.is_file():
            raise StepError(f"the Hamburg test field is not at {source} (set TWIN_SHARED_DIR)")
        self.console.print(f"[bold]import[/] {source} -> {self.plan.hamburg_dir}")
        with exclusive(self.lock), _in_repo(self.plan.models_dir):
            run_command(self.runner, ["scenario", "import", str(source), "--out", str(self.plan.hamburg_dir)])

    # ---- models ---------------------------------------------------------------------------------------
    def reusable(self, spec: ModelSpec) -> tuple[bool, str]:
        """Whether the model in ``spec.folder`` may stand in for the plan's: its manifest's command carries what
        the plan requires, it was made on the current scenario parameters, and the days it names are the days
        here (same seed, scale and length)."""
        from twin_service.engine.recording import Recording

        folder = REPO_ROOT / spec.folder
        manifest_path = folder / "manifest.json"
        if not manifest_path.is_file() or not any(folder.glob("*.safetensors")):
            return False, "not trained yet"
        manifest = json.loads(manifest_path.read_text())
        options = _options(manifest.get("command", ""))
        for option, value in spec.requires:
            have = options.get(option)
            if value == "!":
                if have:
                    return False, f"its command has {option} (the plan's has not)"
            elif value == "*":
                if not have:
                    return False, f"its command lacks {option}"
            elif value.startswith(">="):
                need = float(value[2:])
                if need > 0 and (not have or float(have[-1]) < need):
                    return False, f"{option} {have[-1] if have else 'default'} < {need:g}"
            elif "," in value:  # a list of files: the same files, however the command spelled them
                given = {Path(v).name for h in have or [] for v in h.split(",") if v}
                if given != {Path(v).name for v in value.split(",")}:
                    return (
                        False,
                        f"its command has {option} {', '.join(sorted(given)) or 'unset'}, the plan needs {value}",
                    )
            elif not have or value not in have:
                return False, f"its command has {option} {have or 'unset'}, the plan needs {value}"
        param_hash = manifest.get("scenario_param_hash") or manifest.get("data", {}).get("scenario_param_hash")
        current = self._params_hash("city", tuple(options.get("--set", ())))
        if param_hash and param_hash != current:
            return False, f"made on scenario parameters {param_hash}, the city's are now {current}"
        named = manifest.get("training", {}).get("recordings") or manifest.get("data", {}).get("recordings") or []
        by_name = {Path(p).name: p for p in spec.recordings}
        for entry in named:
            fname = Path(entry.get("file") or entry.get("path", "")).name
            if fname not in by_name:
                continue
            path = REPO_ROOT / by_name[fname]
            if not path.is_file():
                return False, f"its day {fname} is not recorded here"
            with Recording(path) as rec:
                meta = rec.meta
            if int(entry.get("seed", meta.seed)) != meta.seed or int(entry.get("ticks", meta.ticks)) != meta.ticks:
                return False, f"trained on another {fname} (seed or length differs)"
            if abs(float(entry.get("scale", meta.scale)) - meta.scale) > 1e-9:
                return False, f"trained on {fname} at another demand scale"
        return True, "manifest satisfies the plan"

    def _params_hash(self, scenario: str, sets: tuple[str, ...] = ()) -> str:
        """The scenario's parameter hash, with ``--set section.key=value`` overrides as a command gave them."""
        import tomllib

        from twin_service.config import with_overrides
        from twin_service.scenario.folder import Scenario

        key = (scenario, "|".join(sets))
        if key not in self._scenarios:
            sc = Scenario.load(scenario)
            overrides: dict[str, dict[str, object]] = {}
            for pair in sets:
                name, _, raw = pair.partition("=")
                section, _, field_name = name.strip().partition(".")
                try:
                    value = tomllib.loads(f"v = {raw.strip()}")["v"]
                except tomllib.TOMLDecodeError:
                    value = raw.strip()
                overrides.setdefault(section, {})[field_name] = value
            self._scenarios[key] = sc.with_params(with_overrides(sc.params, overrides)) if overrides else sc
        return self._scenarios[key].params.param_hash

    def as_committed(self, name: str) -> bool:
        """Whether a part that needs this model takes the models as they are (``--as-committed``)."""
        parts = self.plan.reductions.as_committed
        return any(name in self.plan.needs.get(p, ()) for p in parts) or (
            name in self.plan.predictors.get("lstm-transformer", ()) and "table2" in parts
        )

    def use_as_committed(self, spec: ModelSpec, why: str) -> bool:
        """``--as-committed``: the model as it is in its folder (status ``as committed``, with why the plan would
        have trained it), or ``missing``; never trained."""
        folder = REPO_ROOT / spec.folder
        if (folder / "manifest.json").is_file() and any(folder.glob("*.safetensors")):
            self._record_model(spec, "as committed", f"used as it is (--as-committed); the plan would train it: {why}")
            return True
        self.report.models[spec.name] = ModelStatus(
            spec.name, spec.folder, "missing", note=f"not in {spec.folder} (--as-committed: not trained here)"
        )
        return False

    def ensure_model(self, name: str) -> bool:
        spec = self.plan.models[name]
        if name in self.report.models and self.report.models[name].status in AVAILABLE:
            return True
        ok, why = self.reusable(spec)
        if ok:
            self._record_model(spec, "reused", why)
            return True
        if self.as_committed(name):
            return self.use_as_committed(spec, why)
        for path in spec.recordings:
            self.ensure_recording(path)
        for option, value in zip(spec.command, spec.command[1:], strict=False):
            if option == "--predictor" and value in self.plan.models:
                self.ensure_model(value)
        self.console.print(f"[bold]train[/] {name} ({why}): twin-service {shlex.join(spec.command)}")
        started = time.monotonic()
        try:
            with exclusive(self.lock), _in_repo(self.plan.models_dir):
                run_command(self.runner, list(spec.command))
        except Exception as exc:
            self.report.models[name] = ModelStatus(name, spec.folder, "failed", note=str(exc))
            raise
        self._record_model(spec, "trained", f"trained in {time.monotonic() - started:.0f} s ({why} before)")
        return True

    def _record_model(self, spec: ModelSpec, status: str, note: str) -> None:
        folder = REPO_ROOT / spec.folder
        manifest = json.loads((folder / "manifest.json").read_text())
        self.report.models[spec.name] = ModelStatus(
            spec.name, spec.folder, status, manifest.get("command", ""),
            policy_fingerprint(folder.name, folder.parent), manifest.get("algorithm", ""), note,
        )  # fmt: skip

    # ---- evaluation runs ------------------------------------------------------------------------------
    def scenario_for(self, condition: Condition, recording: str) -> Any:
        from twin_service.config import with_overrides
        from twin_service.envs.sim import scenario_of

        key = (condition.name, recording)
        if key not in self._scenarios:
            base = scenario_of([REPO_ROOT / recording])
            self._scenarios[key] = base.with_params(with_overrides(base.params, condition.override_dict()))
        return self._scenarios[key]

    def run_key(self, condition: Condition, migration: str, offload: str, recording: str) -> str:
        sc = self.scenario_for(condition, recording)
        models_dir = self.plan.models_dir
        payload = {
            "recording": self.report.recordings.get(recording) or file_sha256(REPO_ROOT / recording),
            "migration": policy_fingerprint(migration, models_dir),
            "offload": policy_fingerprint(offload, models_dir),
            "params": sc.params.param_hash,
            "predictor": policy_fingerprint(condition.predictor, models_dir),
            "options": {
                "span": condition.span, "warmup_s": condition.warmup_s, "episode_s": condition.episode_s,
                "no_uavs": condition.no_uavs, "no_satellite": condition.no_satellite,
                "dynamic_mask": condition.dynamic_mask, "uav_churn": condition.uav_churn, "seed": condition.seed,
            },
        }  # fmt: skip
        return key_of(payload)

    def available(self, *names: str) -> bool:
        """Whether every model among ``names`` (heuristics pass) has weights the report evaluates."""
        return all(
            self.report.models.get(n, ModelStatus(n, "", "reused")).status in AVAILABLE
            for n in names
            if n in self.plan.models
        )

    def eval_options(self, condition: Condition) -> Any:
        from twin_service.envs.evaluate import EvalOptions
        from twin_service.envs.sim import EnvOptions, UavChurn

        env = EnvOptions(
            no_uavs=condition.no_uavs,
            no_satellite=condition.no_satellite,
            dynamic_mask=condition.dynamic_mask,
            uav_churn=UavChurn(*condition.uav_churn) if condition.uav_churn else None,
            overrides=condition.override_dict(),
            predictor=condition.predictor,
            models_dir=self.plan.models_dir,
        )
        begin, end = condition.span if condition.span else (None, None)
        return EvalOptions(
            episode_s=condition.episode_s, warmup_s=condition.warmup_s, env=env, seed=condition.seed,
            begin_s=begin, end_s=end,
        )  # fmt: skip

    def evaluate_figure(self, figure_name: str) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        from twin_service.engine.recording import Recording
        from twin_service.envs.evaluate import run_day

        figure = self.plan.figures[figure_name]
        todo = []
        for arm in figure.arms:
            condition = self.plan.conditions[arm.condition]
            for path in condition.recordings:
                self.ensure_recording(path)
            if condition.predictor != "persistence":
                self.ensure_model(condition.predictor)
            for migration, offload in arm.runs():
                if not self.available(migration, offload, condition.predictor):
                    continue  # a seed missing under --as-committed: the arm keeps the others
                for path in condition.recordings:
                    key = self.run_key(condition, migration, offload, path)
                    self.report.run_keys[(condition.name, migration, offload, path)] = key
                    if (
                        self.report.runs.get(key) is None
                        and (condition.name, migration, offload, path, key) not in todo
                    ):
                        todo.append((condition.name, migration, offload, path, key))
        if not todo:
            self.console.print(f"{figure_name}: every run is stored (reused)")
            return
        ticks = {}
        for _, _, _, path, _ in todo:
            if path not in ticks:
                with Recording(REPO_ROOT / path) as rec:
                    ticks[path] = rec.meta.ticks
        total = 0
        for cname, _, _, path, _ in todo:
            c = self.plan.conditions[cname]
            total += int(min(c.span[1], 1e12) - c.span[0]) if c.span else ticks[path]
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
        with Progress(*columns, console=self.console, transient=False) as bar:
            task = bar.add_task(f"{figure_name}: {len(todo)} runs", total=total)
            for i, (cname, migration, offload, path, key) in enumerate(todo):
                condition = self.plan.conditions[cname]
                bar.update(task, description=f"{figure_name} {i + 1}/{len(todo)}: {migration} + {offload} | {cname} | "
                           f"{Path(path).stem}")  # fmt: skip
                sc = self.scenario_for(condition, path)
                with exclusive(self.lock), _in_repo(self.plan.models_dir), Recording(REPO_ROOT / path) as rec:
                    sc.check_recording(rec.path, rec.meta.mobility_hash, rec.meta.param_hash, rec.meta.scenario)
                    sums, _ = run_day(
                        sc, rec, migration, offload, self.eval_options(condition), on_tick=lambda: bar.advance(task)
                    )
                rows = [
                    {"condition": cname, "migration": migration, "offload": offload, "recording": Path(path).stem,
                     "episode": k, "episodes": len(sums), **asdict(s)}
                    for k, s in enumerate(sums)
                ]  # fmt: skip
                self.report.runs.put(key, rows)

    # ---- Table II ------------------------------------------------------------------------------------
    def run_table2(self) -> None:
        from twin_service.policies import DEFAULT_MIGRATION_POLICY
        from twin_service.report.predictor import NAIVE, NAIVE_WINDOW, block_errors, naive_block_errors

        b = self.plan.budget
        test = self.plan.conditions["city"].recordings
        for path in test:
            self.ensure_recording(path)
        for names in self.plan.predictors.values():
            for name in names:
                self.ensure_model(name)
        todo = []
        for net, names in [*self.plan.predictors.items(), *((n, (n,)) for n in NAIVE)]:
            for name in names:
                for path in test:
                    key = self.predictor_key(name, path)
                    self.report.predictor_keys[(name, path)] = key
                    if self.report.predictor_rows.get(key) is None:
                        todo.append((net, name, path, key))
        for i, (net, name, path, key) in enumerate(todo):
            self.console.print(f"table2 {i + 1}/{len(todo)}: {name} on {Path(path).stem}")
            with exclusive(self.lock), _in_repo(self.plan.models_dir):
                if name in NAIVE:
                    rows = naive_block_errors(
                        name, REPO_ROOT / path, b.predictor_block_s, NAIVE_WINDOW, DEFAULT_MIGRATION_POLICY
                    )
                else:
                    folder = REPO_ROOT / self.plan.models[name].folder
                    rows = block_errors(folder, REPO_ROOT / path, b.predictor_block_s)
            self.report.predictor_rows.put(key, [{"network": net, "model": name, **r} for r in rows])

    def predictor_key(self, name: str, path: str) -> str:
        """The key Table II's rows of a predictor (a trained model, or a naive forecast) on a held-out day are
        stored under."""
        from twin_service.policies import DEFAULT_MIGRATION_POLICY
        from twin_service.report.predictor import NAIVE, NAIVE_WINDOW

        recording = self.report.recordings.setdefault(path, file_sha256(REPO_ROOT / path))
        common = {"recording": recording, "block_s": self.plan.budget.predictor_block_s,
                  "params": self._params_hash("city")}  # fmt: skip
        if name in NAIVE:
            return key_of({"naive": name, **common, "window": NAIVE_WINDOW, "hosting": DEFAULT_MIGRATION_POLICY})
        folder = REPO_ROOT / self.plan.models[name].folder
        return key_of({"predictor": policy_fingerprint(folder.name, folder.parent), **common})

    # ---- the whole ------------------------------------------------------------------------------------
    def run(self) -> Report:
        from twin_service.report.render import write_report

        for part in self.report.parts:
            self.console.rule(f"[bold]{part}")
            wall, cpu = time.monotonic(), time.process_time()
            try:
                if part == "table2":
                    self.run_table2()
                else:
                    for name in self.plan.needs.get(part, ()):
                        self.ensure_model(name)
                    if part in self.plan.figures:
                        self.evaluate_figure(part)
                    elif part == "hamburg":
                        self.report.skipped[part] = f"not in the {self.plan.budget.name} budget"
            except KeyboardInterrupt:
                raise
            except Exception as exc:  # one part's failure is reported; the others go on
                message = str(exc) or exc.__class__.__name__
                self.report.failures[part] = message
                self.console.print(f"[red]{part} failed:[/] {message}")
                if not isinstance(exc, StepError):
                    self.console.print(traceback.format_exc())
            self.report.timings[part] = (time.monotonic() - wall, time.process_time() - cpu)
            self.console.print(
                f"{part}: {self.report.timings[part][0]:.0f} s ({self.report.timings[part][1]:.0f} s CPU)"
            )
            self.collect_known()  # the document written after each part holds every stored result, not only its
            write_report(self.report, self.console, parts={part})
        self.collect_known()
        dropped = self.drop_stale()
        if dropped:
            self.console.print(f"dropped {dropped} stored results of models or days no longer in the plan")
        write_report(self.report, self.console, final=True)
        return self.report

    def drop_stale(self) -> int:
        """After a whole report that ran to the end: drops the stored results no current arm or predictor refers
        to (older models or days); returns how many keys went. Not under ``--days``: the budget's other days are
        still its plan's, and a later report without it reuses their runs."""
        if set(self.report.parts) != set(FIGURES) or self.report.failures or self.plan.reductions.days:
            return 0
        dropped = self.report.runs.keep_only(set(self.report.run_keys.values()))
        return dropped + self.report.predictor_rows.keep_only(set(self.report.predictor_keys.values()))

    def collect_known(self) -> None:  # noqa: C901 - one pass over each kind of stored result
        """Keys and model states of the parts not run this time, where their models are here (their stored rows
        are reused in the document)."""
        for name, spec in self.plan.models.items():
            if name in self.report.models:
                continue
            ok, why = self.reusable(spec)
            if ok:
                self._record_model(spec, "reused", why)
            elif not self.as_committed(name):
                self.report.models[name] = ModelStatus(name, spec.folder, "missing", note=why)
            else:
                self.use_as_committed(spec, why)
        for figure in self.plan.figures.values():
            for arm in figure.arms:
                condition = self.plan.conditions[arm.condition]
                for migration, offload in arm.runs():
                    for path in condition.recordings:
                        k = (condition.name, migration, offload, path)
                        if k in self.report.run_keys or not (REPO_ROOT / path).is_file():
                            continue
                        if not self.available(migration, offload, condition.predictor):
                            continue
                        self.report.recordings.setdefault(path, file_sha256(REPO_ROOT / path))
                        self.report.run_keys[k] = self.run_key(condition, migration, offload, path)
        from twin_service.report.predictor import NAIVE

        for name in [*(n for names in self.plan.predictors.values() for n in names), *NAIVE]:
            if name not in NAIVE and self.report.models[name].status not in AVAILABLE:
                continue
            for path in self.plan.conditions["city"].recordings:
                if (name, path) not in self.report.predictor_keys and (REPO_ROOT / path).is_file():
                    self.report.predictor_keys[(name, path)] = self.predictor_key(name, path)


def build(
    budget: str, out: Path, only: str | None = None, work: Path | None = None, lock: Path | None = None,
    console: Console | None = None, reductions: Reductions | None = None, runner: CommandRunner | None = None,
) -> Report:  # fmt: skip
    """Run the report for a budget into ``out`` (see the module docstring); returns what it did. ``runner`` runs
    each step's ``twin-service`` command in this process (:data:`CommandRunner`)."""
    from twin_service.config import Settings

    if budget not in BUDGETS:
        raise ValueError(f"unknown budget {budget!r}: choose {', '.join(BUDGETS)}")
    b = BUDGETS[budget]
    parts = expand_only(only)
    out = out.resolve()
    work = (work or REPO_ROOT / "data" / "report" / budget).resolve()
    models_dir = (work / "models") if b.separate_models else Settings().models_dir.resolve()
    plan = make_plan(b, work, models_dir, reductions)
    out.mkdir(parents=True, exist_ok=True)
    pipeline = Pipeline(plan, out, parts, lock, console or Console(stderr=True), runner)
    return pipeline.run()
