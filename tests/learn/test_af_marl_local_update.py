"""AF-MARL's local updates (paper B, Eq. 41-43): computed for every client in one batched pass, they equal each
client's own update computed alone (issue 21); the replay buffer's per-vehicle datasets D_n."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from twin_service.learn.af_marl_client import AUX, AfMarlModel, LocalConfig, local_update, td_targets
from twin_service.learn.offload_common import ReplayBuffer
from twin_service.observe import offload_feature_dim


def _small_case(
    clients: int = 3, batch: int = 5, **arch: str | bool
) -> tuple[AfMarlModel, AfMarlModel, dict[str, torch.Tensor]]:
    torch.manual_seed(0)
    obs_dim = offload_feature_dim()
    model = AfMarlModel(obs_dim, latent=8, d_model=8, n_layers=2, hidden=16, cvae_hidden=16, critic_hidden=16, **arch)
    targets = copy.deepcopy(model)
    with torch.no_grad():  # targets apart from the model, so that the TD target matters
        for p in targets.parameters():
            p.add_(0.05 * torch.randn_like(p))
    data = {
        "obs": torch.rand(clients, batch, obs_dim + 1),
        "act": torch.rand(clients, batch, 1),
        "rew": torch.rand(clients, batch),
        "next_obs": torch.rand(clients, batch, obs_dim + 1),
        "done": (torch.rand(clients, batch) < 0.3).float(),
    }
    return model, targets, data


ARCHITECTURES = [{}, {"trunk": "mlp"}, {"cvae": False}, {"trunk": "mlp", "cvae": False}]


@pytest.mark.parametrize("method", ["grouped", "vmap"])
@pytest.mark.parametrize(
    ("local_steps", "arch"), [(1, {}), (2, {}), (1, "others_pi")] + [(1, a) for a in ARCHITECTURES[1:]], ids=str
)
def test_batched_local_updates_equal_each_client_alone(method: str, local_steps: int, arch: dict | str) -> None:
    model, targets, data = _small_case(**(arch if isinstance(arch, dict) else {}))
    if arch == "others_pi":  # the actor's loss at the co-hosted rho without exploration
        data["others_pi"] = torch.rand(3, 5, 1)
    cfg = LocalConfig(gamma=0.9, local_steps=local_steps, lr_local=0.05)
    alone = local_update(model, targets, data, cfg, torch.Generator().manual_seed(7), "per-client")
    batched = local_update(model, targets, data, cfg, torch.Generator().manual_seed(7), method)
    assert batched.delta.keys() == alone.delta.keys()
    for k in alone.delta:
        assert batched.delta[k].shape == alone.delta[k].shape
        torch.testing.assert_close(batched.delta[k], alone.delta[k], rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(batched.scores, alone.scores, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(batched.losses, alone.losses, rtol=1e-4, atol=1e-6)
    assert batched.losses.shape == (3, len(AUX))
    # every client moved, and differently (its own data): the per-client path is not trivially equal
    moved = torch.stack([d.reshape(3, -1).norm(dim=1) for d in alone.delta.values()]).sum(0)
    assert (moved > 0).all()
    assert not torch.allclose(alone.delta["q1.net.0.weight"][0], alone.delta["q1.net.0.weight"][1])


def test_a_clients_update_depends_only_on_its_own_data() -> None:
    model, targets, data = _small_case()
    cfg = LocalConfig(gamma=0.9)
    base = local_update(model, targets, data, cfg, torch.Generator().manual_seed(1))
    changed = {k: v.clone() for k, v in data.items()}
    changed["rew"][2] += 1.0  # only client 2's rewards
    other = local_update(model, targets, changed, cfg, torch.Generator().manual_seed(1))
    for k in base.delta:
        torch.testing.assert_close(other.delta[k][:2], base.delta[k][:2])
    assert not torch.allclose(other.delta["q1.net.4.bias"][2], base.delta["q1.net.4.bias"][2])


def test_without_discount_the_td_target_is_the_reward() -> None:
    model, targets, data = _small_case()
    noise = torch.zeros(3, 5, 1)
    torch.testing.assert_close(td_targets(targets, data, noise, LocalConfig(gamma=0.0)), data["rew"])
    with_gamma = td_targets(targets, data, noise, LocalConfig(gamma=0.5))
    assert not torch.allclose(with_gamma, data["rew"])


def test_replay_buffer_datasets_follow_the_ring() -> None:
    buf = ReplayBuffer(capacity=5, obs_dim=2)

    def add(agents: list[int]) -> None:
        n = len(agents)
        buf.add(np.zeros((n, 2)), np.zeros(n), np.arange(n), np.zeros((n, 2)), np.zeros(n), np.array(agents))

    add([7, 7, 3])
    assert buf.dataset_size(7) == 2 and buf.dataset_size(3) == 1 and buf.dataset_size(9) == 0
    add([9, 9, 9])  # the ring wraps: slot 0 (agent 7) is overwritten
    assert buf.size == 5 and buf.ptr == 1
    assert buf.dataset_size(7) == 1 and buf.dataset_size(9) == 3
    np.testing.assert_array_equal(buf.agent_indices(7), [1])
    np.testing.assert_array_equal(buf.agent_indices(9), [0, 3, 4])
    np.testing.assert_array_equal(buf.dataset_sizes(np.array([9, 3, 7, 1])), [3, 1, 1, 0])
    assert len(buf.agent_indices(1)) == 0
    # a checkpoint's state restores the datasets
    again = ReplayBuffer(capacity=5, obs_dim=2)
    again.load_state_dict(buf.state_dict())
    assert (again.ptr, again.size) == (buf.ptr, buf.size)
    np.testing.assert_array_equal(again.dataset_sizes(np.array([9, 3, 7])), [3, 1, 1])
    np.testing.assert_array_equal(again.rew, buf.rew)


def test_the_actor_loss_follows_others_pi() -> None:
    model, targets, data = _small_case()
    cfg = LocalConfig(gamma=0.0)
    base = local_update(model, targets, data, cfg, torch.Generator().manual_seed(1))
    same = local_update(
        model, targets, {**data, "others_pi": data["obs"][..., -1:]}, cfg, torch.Generator().manual_seed(1)
    )
    other = local_update(
        model, targets, {**data, "others_pi": data["obs"][..., -1:] + 2.0}, cfg, torch.Generator().manual_seed(1)
    )
    for k in base.delta:
        torch.testing.assert_close(same.delta[k], base.delta[k])  # others_pi = the critics' others: as before
        if not k.startswith("net.actor."):  # only the actor's update depends on it
            torch.testing.assert_close(other.delta[k], base.delta[k])
    assert not torch.allclose(other.delta["net.actor.head.3.bias"], base.delta["net.actor.head.3.bias"])
