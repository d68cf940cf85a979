"""Short training runs on a small recorded day: every trainer writes a servable model and resumes an interrupted
run bit for bit (issue 21); AF-MARL is repeatable for a seed and beats random and local-only offloading after
seconds of training (issue 13)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from twin_service.learn import af_marl, afl_maddpg, ddqn, sfl_ppo
from twin_service.learn.sfl_ppo import fedsgd_gradient
from twin_service.learn.validate import validate_offload
from twin_service.policies import ModelRegistry, offload_policy

pytestmark = pytest.mark.timeout(600)

SHORT = {"episodes": 4, "episode_s": 40.0, "warmup_s": 20.0, "progress": False, "gamma": 0.0}


def _af_marl_args(rec: Path, out: Path, **extra) -> af_marl.AfMarlArgs:
    kw = {**SHORT, "learning_starts": 200, "clients_per_tick": 8, "batch_size": 32, "actor_starts": 20, **extra}
    return af_marl.AfMarlArgs(recordings=[rec], out=out, validation=[rec], **kw)


@pytest.fixture(scope="module")
def trained(small_recording: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return af_marl.train(_af_marl_args(small_recording, tmp_path_factory.mktemp("models") / "afm-small"))


def test_af_marl_writes_a_servable_model_with_curves(trained: Path, small_recording: Path) -> None:
    manifest = json.loads((trained / "manifest.json").read_text())
    assert manifest["algorithm"] == "AF-MARL" and manifest["architecture"]["kind"] == "af-marl"
    assert manifest["evaluation"]["validation_episodes"] == 2
    header = (trained / "curves.csv").read_text().splitlines()[0].split(",")
    for column in ("cost", "success", "cvae_loss", "adfl_loss", "critic_loss", "actor_loss", "aggregations"):
        assert column in header
    assert (trained / "curves.png").stat().st_size > 1000
    policy = offload_policy(trained.name, registry=ModelRegistry(trained.parent))
    assert policy.needs_window_mean


def test_af_marl_beats_random_and_local_only(trained: Path, small_recording: Path) -> None:
    policy = offload_policy(trained.name, registry=ModelRegistry(trained.parent))
    net = policy.network
    rng = torch.Generator().manual_seed(0)

    def score(actor) -> float:  # noqa: ANN001
        return validate_offload(actor, None, [small_recording], 40.0, 20.0, seed=1)["validation_cost_mean"]

    learned = score(net)
    local = score(lambda obs: torch.zeros(len(obs)))
    random = score(lambda obs: torch.rand(len(obs), generator=rng))
    assert learned < local and learned < random, (learned, local, random)


def test_af_marl_is_repeatable_and_resumes_an_interrupted_run_bit_for_bit(
    trained: Path, small_recording: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from twin_service.envs.offload import OffloadCore

    args = _af_marl_args(small_recording, tmp_path / "afm-small")
    # the fixture's run again (same seed), killed in its third episode, then run again: it goes on from the
    # checkpoint of episode 2 and ends with the fixture's weights, bit for bit
    monkeypatch.setattr(OffloadCore, "reset", _killed_at_reset(3))
    with pytest.raises(KeyboardInterrupt):
        af_marl.train(args)
    monkeypatch.undo()
    checkpoint = tmp_path / "afm-small.checkpoint"
    assert (checkpoint / "curves.csv").read_text().count("\n") == 3  # header and two episodes
    assert not (tmp_path / "afm-small" / "manifest.json").exists()
    resumed = af_marl.train(args)
    assert not checkpoint.exists()  # removed once the model is written
    a, b = load_file(str(trained / "weights.safetensors")), load_file(str(resumed / "weights.safetensors"))
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)

    def columns(folder: Path) -> list[tuple[str, str]]:
        rows = (folder / "curves.csv").read_text().splitlines()
        header = rows[0].split(",")
        keep = [header.index(k) for k in ("episode", "cost", "success", "critic_loss", "aggregations")]
        return [tuple(r.split(",")[i] for i in keep) for r in rows[1:]]

    assert columns(resumed) == columns(trained) and len(columns(resumed)) == 4


def test_af_marl_ablation_without_cvae_and_transformer_in_synchronous_rounds(
    small_recording: Path, tmp_path: Path
) -> None:
    args = _af_marl_args(
        small_recording, tmp_path / "afm-abl", episodes=2, trunk="mlp", cvae=False, rounds="synchronous"
    )
    folder = af_marl.train(args)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["architecture"]["options"] | {"trunk": "mlp", "cvae": False} == manifest["architecture"]["options"]
    weights = load_file(str(folder / "weights.safetensors"))
    assert not any(k.startswith("cvae.") for k in weights) and "actor.trunk.inp.weight" in weights
    rows = (folder / "curves.csv").read_text().splitlines()
    header = rows[0].split(",")
    last = dict(zip(header, rows[-1].split(","), strict=True))
    assert float(last["admitted_share"]) == 1.0  # synchronous rounds admit every update
    assert float(last["cvae_loss"]) == 0.0
    policy = offload_policy(folder.name, registry=ModelRegistry(folder.parent))
    assert policy.network.cvae is None


def test_a_checkpoint_of_other_arguments_is_refused(tmp_path: Path) -> None:
    from twin_service.learn import checkpoint

    out = tmp_path / "m"
    first = checkpoint.Checkpointer(out, None, True, {"batch_size": 32, "episodes": 4})
    assert first.found is None and first.start_episode == 0
    first.save(checkpoint.Checkpoint(tensors={"w": torch.ones(2)}), next_episode=2)
    more = checkpoint.Checkpointer(out, None, True, {"batch_size": 32, "episodes": 10})  # more episodes: fine
    assert more.start_episode == 2
    torch.testing.assert_close(more.found.tensors["w"], torch.ones(2))
    with pytest.raises(checkpoint.CheckpointMismatch, match="batch_size"):
        checkpoint.Checkpointer(out, None, True, {"batch_size": 64, "episodes": 4})
    assert checkpoint.Checkpointer(out, None, False, {"batch_size": 64}).found is None  # resume=False starts over
    more.finish()
    assert not (tmp_path / "m.checkpoint").exists()


def _killed_at_reset(n: int):  # noqa: ANN202
    """OffloadCore.reset that raises KeyboardInterrupt (a session ending) at its ``n``-th call."""
    from twin_service.envs.offload import OffloadCore

    calls = {"n": 0}
    reset = OffloadCore.reset

    def patched(self, seed=None):  # noqa: ANN001, ANN202
        calls["n"] += 1
        if calls["n"] == n:
            raise KeyboardInterrupt
        return reset(self, seed)

    return patched


@pytest.mark.parametrize(
    ("module", "cls", "kind"),
    [(afl_maddpg, "AflMaddpgArgs", "mlp"), (sfl_ppo, "SflPpoArgs", "mlp"), (ddqn, "DdqnArgs", "q-bins")],
)
def test_baselines_train_serve_and_resume_bit_for_bit(
    module, cls: str, kind: str, small_recording: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # noqa: ANN001
    from twin_service.envs.offload import OffloadCore

    extra = {} if module is sfl_ppo else {"learning_starts": 200}

    def args(out: Path):  # noqa: ANN202
        return getattr(module, cls)(recordings=[small_recording], out=out, validation=[], **SHORT, **extra)

    folder = module.train(args(tmp_path / "base"))
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["architecture"]["kind"] == kind
    policy = offload_policy(folder.name, registry=ModelRegistry(folder.parent))
    assert policy.name == "base"
    # the same run killed in its third episode, then run again: it goes on from the checkpoint of episode 2
    monkeypatch.setattr(OffloadCore, "reset", _killed_at_reset(3))
    with pytest.raises(KeyboardInterrupt):
        module.train(args(tmp_path / "again" / "base"))
    monkeypatch.undo()
    assert (tmp_path / "again" / "base.checkpoint" / "state.json").is_file()
    resumed = module.train(args(tmp_path / "again" / "base"))
    a, b = load_file(str(folder / "weights.safetensors")), load_file(str(resumed / "weights.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)
    assert not (tmp_path / "again" / "base.checkpoint").exists()


def test_fedsgd_equals_pooled_gradient() -> None:
    # Eq. 34 over gradients with |D_n| weights = the gradient of the mean loss over every client's samples
    torch.manual_seed(0)
    w = torch.randn(3, requires_grad=True)
    data = [torch.randn(n, 3) for n in (2, 5)]
    per_client = [((x @ w) ** 2).mean() for x in data]
    fed = fedsgd_gradient(per_client, [2, 5], [w])[0]
    pooled = torch.autograd.grad(((torch.cat(data) @ w) ** 2).mean(), [w])[0]
    torch.testing.assert_close(fed, pooled)
    assert np.isfinite(fed.numpy()).all()
