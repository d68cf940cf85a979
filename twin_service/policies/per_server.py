"""The per-server migration actor: one shared network scores every candidate server of a vehicle.

The logit of server m for vehicle v comes from the features of the pair (``observe.per_server_features``:
distance over range, the compute latency the twin would see there, load, room, tier, whether m is the current
host, and the current host's latency and distance), embedded by a shared MLP and compared with the mean
embedding of the vehicle's feasible servers (a Deep Sets context, so that a server is scored against its
alternatives). Only feasible pairs are scored; the others keep
:data:`~twin_service.policies.torch_policy.MASKED_LOGIT`. The action is the argmax (paper A Eq. 20) or a draw
from the policy (``execution`` in the manifest: whichever validated better). The same network serves any
number of servers, in any city.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

from twin_service.config import ChannelParams, SatelliteParams, TaskParams
from twin_service.observe import (
    PER_SERVER_FEATURES,
    LatencyModel,
    MigrationObservation,
    ServerTable,
    load_free_features,
    per_server_features,
    set_load_features,
)
from twin_service.policies import onnx_graphs
from twin_service.policies.base import MigrationDecision
from twin_service.policies.errors import ModelSpecMismatch
from twin_service.policies.manifest import ModelManifest
from twin_service.policies.masking import MASKED_LOGIT
from twin_service.policies.onnx_graphs import PerServerRuntime
from twin_service.policies.sequential import PairScores, decide_in_turns_pairs
from twin_service.policies.torch_policy import _ACTIVATIONS, ExecutionSampler
from twin_service.scenario.edge_servers import EdgeLayout
from twin_service.scenario.folder import Scenario


def _mlp(sizes: Sequence[int], activation: str, last_activation: bool) -> nn.Sequential:
    layers: list[nn.Module] = []
    for k in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[k], sizes[k + 1]))
        if k < len(sizes) - 2 or last_activation:
            layers.append(_ACTIVATIONS[activation]())
    return nn.Sequential(*layers)


class PerServerActor(nn.Module):
    """Scores (vehicle, server) pairs: ``(P, F)`` pair features -> ``(B, M)`` logits, unscored pairs masked.

    Only the candidate pairs are given (:func:`candidate_mask`: a few per vehicle among the M servers), so the
    cost grows with them, not with the layout. ``rows`` (ascending) and ``cols`` name each pair's vehicle (row
    of the batch) and server.
    """

    def __init__(self, n_features: int, hidden: Sequence[int] = (32, 32), activation: str = "tanh") -> None:
        super().__init__()
        if activation not in _ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(_ACTIVATIONS)}, got {activation!r}")
        width = hidden[-1]
        self.embed = _mlp([n_features, *hidden], activation, last_activation=True)
        self.score = _mlp([2 * width, width, 1], activation, last_activation=False)
        self.stay_bias = nn.Parameter(torch.tensor(STAY_BIAS_INIT))
        """Added to the current host's logit: a learned prior for staying put (a migration costs 60 MB)."""
        self.host_feature = PER_SERVER_FEATURES.index("is_current_host")

    def forward(
        self, features: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, shape: tuple[int, int]
    ) -> torch.Tensor:
        n, m = shape
        h = self.embed(features)
        # The mean embedding of each vehicle's candidates (rows come sorted: segments of the pair list).
        lengths = torch.bincount(rows, minlength=n)
        context = torch.segment_reduce(h, "mean", lengths=lengths, unsafe=True)
        scores = self.score(torch.cat([h, context[rows]], dim=-1)).squeeze(-1)
        scores = scores + self.stay_bias * features[:, self.host_feature]
        logits = torch.full((n, m), MASKED_LOGIT, dtype=scores.dtype)
        return logits.index_put((rows, cols), scores)


class FusedPairScorer:
    """:class:`PerServerActor`'s forward pass for serving, without modules: the same maths in fewer, larger steps.

    The score layer's input is ``[h_pair, context_vehicle]``; its weight is split so that the context's half
    is multiplied once per vehicle instead of once per pair. Same logits as the module to float32 rounding
    (tested).
    """

    def __init__(self, actor: PerServerActor) -> None:
        def linears(seq: nn.Sequential) -> list[tuple[torch.Tensor, torch.Tensor]]:
            return [
                (m.weight.detach().t().contiguous(), m.bias.detach().clone()) for m in seq if isinstance(m, nn.Linear)
            ]

        acts = [m for m in actor.embed if not isinstance(m, nn.Linear)]
        self.activation = {nn.Tanh: torch.tanh, nn.ReLU: torch.relu}[type(acts[0])]
        self.embed = linears(actor.embed)
        (w1, b1), (w2, b2) = linears(actor.score)
        width = w1.shape[0] // 2
        self.score_pair, self.score_context, self.score_bias = w1[:width].contiguous(), w1[width:].contiguous(), b1
        self.out_weight, self.out_bias = w2[:, 0].contiguous(), b2
        self.stay_bias = actor.stay_bias.detach().clone()
        self.host_feature = actor.host_feature

    def __call__(self, features: torch.Tensor, rows: torch.Tensor, n: int) -> torch.Tensor:
        act = self.activation
        h = features
        for w, b in self.embed:
            h = act(torch.addmm(b, h, w))
        lengths = torch.bincount(rows, minlength=n)
        context = torch.segment_reduce(h, "mean", lengths=lengths, unsafe=True)
        z = torch.addmm(self.score_bias, context, self.score_context)[rows]
        z = act(z.addmm_(h, self.score_pair))
        scores = torch.mv(z, self.out_weight).add_(self.out_bias)
        return scores.add_(features[:, self.host_feature] * self.stay_bias)


def build_actor(manifest: ModelManifest) -> PerServerActor:
    arch = manifest.architecture
    return PerServerActor(manifest.observation.feature_dim, arch.hidden, arch.activation)


STAY_BIAS_INIT = 5.0
"""Initial prior for the current host: an untrained actor moves a twin in about 5 % of the ticks (e^5 = 148 to
one, against about eight candidates) instead of migrating at random every tick; training adjusts it."""
DEFAULT_CANDIDATES = 8
"""Ground or air servers a vehicle weighs: its nearest feasible ones (plus its host and the satellite)."""


def candidate_mask(
    observation: MigrationObservation, host: NDArray[np.int64] | None, nearest: int = DEFAULT_CANDIDATES
) -> NDArray[np.bool_]:
    """``(V, M)`` the servers the actor scores: the ``nearest`` feasible ground or air servers of each vehicle,
    its current host and the satellite, when feasible (Eq. 23). A farther server would cost more access and
    migration latency than a nearer one with room; leaving it out keeps the actor's cost per vehicle fixed
    however many servers the city has."""
    return candidates(
        observation.mask, observation.distances_m, observation.servers.is_satellite, host, nearest,
        spare_units(observation),
    )  # fmt: skip


def spare_units(observation: MigrationObservation) -> NDArray[np.bool_] | None:
    """``(M,)`` True for the RSU units that stand in for no site now: at a site with several units (an import
    stacks them where one is not enough, ``scenario.provision``), every unit but the one with the most free room.

    Why: the actor learned on a city with one server per site, so a candidate means a site. Offered the three
    units of a busy site as three candidates, it gave that site about three times the share it gives one server,
    and the eight nearest candidates covered only a few sites (issue 17: on Hamburg at 1.5 times its demand the
    stacked sites filled to 45 MB on average against 30 for the others). So a site is one candidate, its unit
    with the most room (which can take a twin whenever any of its units can), as a site's own balancer would
    place it; a vehicle's host stays a candidate whichever unit it is. Units are co-located RSUs (the same plane
    position); None where there are none (the committed city) or the observation carries no positions, so
    decisions there are unchanged."""
    rsu_sites = _rsu_sites_of(observation)
    if rsu_sites is None or rsu_sites.site is None:
        return None
    servers, site = observation.servers, rsu_sites.site
    rsu = servers.rsu_indices
    room = (
        np.asarray(servers.load_max_bits, dtype=np.float64)[rsu]
        - np.asarray(observation.predicted_load_bits, dtype=np.float64)[rsu]
    )
    room = np.where(servers.active[rsu], room, -np.inf)
    # Each site's unit with the most room, the first in layout order among equals.
    order = np.lexsort((rsu, -room, site))
    first = np.ones(len(order), dtype=bool)
    first[1:] = site[order][1:] != site[order][:-1]
    spare = np.zeros(servers.size, dtype=bool)
    spare[rsu[order[~first]]] = True
    return spare


def candidates(
    mask: NDArray[np.bool_],
    distances_m: NDArray[np.floating],
    is_satellite: NDArray[np.bool_],
    host: NDArray[np.int64] | None,
    nearest: int = DEFAULT_CANDIDATES,
    spare: NDArray[np.bool_] | None = None,
) -> NDArray[np.bool_]:
    """:func:`candidate_mask` from its parts; each row's candidates depend on that row's mask, distances and host
    and on ``spare`` (:func:`spare_units`, the same for every row) only: a row gives the same answer alone as in a
    matrix, what :class:`TurnScorer` relies on."""
    mask = np.asarray(mask, dtype=bool)
    n, m = mask.shape
    sat = is_satellite
    offered = mask & ~sat[None, :] if spare is None else mask & ~(sat | spare)[None, :]
    dist = np.where(offered, np.asarray(distances_m, dtype=np.float32), np.inf)
    k = min(nearest, m)
    keep = nearest_finite(dist, k) if n and k else np.zeros_like(mask)
    keep[:, sat] = mask[:, sat]
    if host is not None:
        h = np.asarray(host, dtype=np.int64)
        ok = np.flatnonzero((h >= 0) & (h < m))
        keep[ok, h[ok]] |= mask[ok, h[ok]]
    return keep


def nearest_finite(dist: NDArray[np.float32], k: int) -> NDArray[np.bool_]:
    """``(V, M)``: the finite entries among the ``k`` first that ``np.argpartition(dist, k - 1, axis=1)`` gives
    each row (the ``k`` smallest), found faster.

    Why not argpartition itself: on a tick's ``(V, M)`` float32 distances numpy's value partition is about five
    times faster than its index partition (1,572 x 87: 0.36 against 1.9 ms), and it runs in every scoring pass.
    The k-th smallest value of a row says which entries are among the k smallest: those at most it, when exactly k
    are. Where more are (a tie at the k-th value) or it is NaN, which of the tied entries argpartition keeps is
    its own choice, so those rows ask it (each row is partitioned on its own, so a row gives the same answer
    alone as in the whole matrix). Where the k-th value is infinite, every finite entry is among the k."""
    n, m = dist.shape
    if k >= m:
        return np.isfinite(dist)
    kth = np.partition(dist, k - 1, axis=1)[:, k - 1 : k]
    keep = dist <= kth
    kth = kth[:, 0]
    ask = np.flatnonzero(np.isnan(kth) | (np.isfinite(kth) & (np.count_nonzero(keep, axis=1) != k)))
    keep &= np.isfinite(dist)
    if ask.size:
        part = dist[ask]
        cols = np.argpartition(part, k - 1, axis=1)[:, :k]
        rows = np.repeat(np.arange(len(ask)), k)
        cols = cols.reshape(-1)
        finite = np.isfinite(part[rows, cols])
        redo = np.zeros(part.shape, dtype=bool)
        redo[rows[finite], cols[finite]] = True
        keep[ask] = redo
    return keep


def sites_in_reach(xy_m: NDArray[np.floating], range_m: NDArray[np.floating]) -> float:
    """How many other RSU sites a site reaches, the median over the sites: how crowded a layout is, as a vehicle
    that can reach one RSU sees it (co-located units are one site; each site's reach is its units' range)."""
    return _RsuSites.of(np.asarray(xy_m, dtype=np.float64).reshape(-1, 2), np.asarray(range_m, dtype=np.float64)).reach


class _RsuSites:
    """Where a layout's RSU units stand (RSUs do not move): each unit's site, where some site holds several units
    (None otherwise), and :func:`sites_in_reach`."""

    def __init__(self, site: NDArray[np.intp] | None, reach: float) -> None:
        self.site = site
        self.reach = reach

    @classmethod
    def of(cls, xy: NDArray[np.float64], range_m: NDArray[np.float64]) -> _RsuSites:
        if len(xy) < 2:
            return cls(None, 0.0)
        sites, site, count = np.unique(xy, axis=0, return_inverse=True, return_counts=True)
        site = site.reshape(-1)
        reach = np.zeros(len(sites))
        np.maximum.at(reach, site, range_m)
        d = np.hypot(*(sites[:, None, :] - sites[None, :, :]).transpose(2, 0, 1))
        site.setflags(write=False)
        return cls(site if (count > 1).any() else None, float(np.median((d <= reach[:, None]).sum(axis=1) - 1)))


@lru_cache(maxsize=16)
def _rsu_sites(xy: bytes, range_m: bytes) -> _RsuSites:
    return _RsuSites.of(np.frombuffer(xy, dtype=np.float64).reshape(-1, 2), np.frombuffer(range_m, dtype=np.float64))


def _rsu_sites_of(observation: MigrationObservation) -> _RsuSites | None:
    """The observation's :class:`_RsuSites` (asked every turn, computed once per layout); None where it carries no
    server positions."""
    if observation.motion is None:
        return None
    rsu = observation.servers.rsu_indices
    xy = np.ascontiguousarray(observation.motion.server_xy_m[rsu], dtype=np.float64)
    rng = np.ascontiguousarray(np.asarray(observation.servers.range_m, dtype=np.float64)[rsu])
    return _rsu_sites(xy.tobytes(), rng.tobytes())


def layout_reach(observation: MigrationObservation) -> float | None:
    """:func:`sites_in_reach` of the observation's RSUs; None where the observation carries no server positions."""
    rsu_sites = _rsu_sites_of(observation)
    return None if rsu_sites is None else rsu_sites.reach


def candidates_for(nearest: int, trained_reach: float | None, reach: float | None) -> int:
    """How many nearest servers the actor weighs on a layout whose sites reach ``reach`` others (``layout_reach``),
    when it learned to weigh ``nearest`` on one whose sites reach ``trained_reach``: the same share of what is in
    reach, never fewer than it learned with.

    Why: on the city a site reaches 14 others, so the eight nearest are about half of what a vehicle can reach; on
    Hamburg at 1.5 times its demand a site reaches 105, and the eight nearest are a few streets (issue 17), where
    least-loaded spreads the load over every server in range and the actor, weighing only those, filled them.
    On the layout it learned on (and any sparser one) the count is the one it learned with."""
    if not trained_reach or reach is None or reach <= trained_reach:
        return nearest
    return max(nearest, int(round(nearest * reach / trained_reach)))


def _same_spare(a: NDArray[np.bool_] | None, b: NDArray[np.bool_] | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return bool(np.array_equal(a, b))


def feasible_pairs(mask: NDArray[np.bool_]) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """``(rows, cols)`` of the allowed (vehicle, server) pairs, vehicle by vehicle (rows ascending)."""
    rows, cols = np.nonzero(mask)
    return rows, cols


class TurnScorer:
    """One tick's scoring in turns (the ``score`` of :func:`~twin_service.policies.sequential.decide_in_turns_pairs`)
    that computes each pair's load-free features once a tick.

    Why: between the turns of a tick only the servers' predicted loads change (a move takes S_v off its old host
    and adds it to its new one); where the vehicles are, their hosts and how they move stay. Of the pair features
    only ``observe.LOAD_COLUMNS`` depend on the loads, so a vehicle re-scored in a later turn copies the other
    columns of its pairs from the first pass (over every vehicle) and only the load columns are computed again. A
    pair the first pass did not score (a nearer server filled up, so a farther one became a candidate) gets its
    load-free features computed then. Every feature is a function of its own pair only, so they come out the same
    to the bit as :func:`~twin_service.observe.per_server_features` computing them whole, and so do the decisions
    (tested against :meth:`PerServerMigrationPolicy.pair_scores`).
    """

    def __init__(self, policy: PerServerMigrationPolicy) -> None:
        self.policy = policy
        self.features: NDArray[np.float32] | None = None
        """The first pass's ``(P, F)`` features (their load columns those of the tick's own loads)."""
        self.first_pairs: tuple[NDArray[np.intp], NDArray[np.intp]] | None = None
        self.vehicles = 0
        """The tick's vehicles (the first pass's rows)."""
        self.slot: NDArray[np.int32] | None = None
        """``(V, M)``: the row of pair (v, m) in :attr:`features`, -1 where the first pass did not score it; built
        at the first re-scoring (a quiet tick has none)."""
        self.first_mask: NDArray[np.bool_] | None = None
        """The tick's ``(V, M)`` mask (Eq. 23 under the tick's own loads), as the first pass saw it."""
        self.first_candidates: NDArray[np.bool_] | None = None
        """``(V, M)``: each vehicle's candidate servers in the first pass (:func:`candidate_mask`)."""
        self.first_spare: NDArray[np.bool_] | None = None
        """The first pass's :func:`spare_units`."""
        self.nearest = policy.nearest
        """The tick's candidate count (:meth:`PerServerMigrationPolicy.nearest_for`)."""
        self.reused_pairs = 0
        """Re-scored pairs whose load-free features came from the first pass."""
        self.computed_pairs = 0
        """Re-scored pairs whose load-free features had to be computed."""

    def __call__(
        self, observation: MigrationObservation, host: NDArray[np.int64], rows: NDArray[np.intp]
    ) -> PairScores:
        policy = self.policy
        n, m = observation.mask.shape
        if self.features is None:  # the first pass, over the tick's whole observation
            self.first_spare = spare_units(observation)
            self.nearest = policy.nearest_for(observation)
            keep = candidates(
                observation.mask, observation.distances_m, observation.servers.is_satellite, host, self.nearest,
                self.first_spare,
            )  # fmt: skip
            pr, pc = feasible_pairs(keep)
            features = per_server_features(observation, host, policy.latency, (pr, pc))
            self.features, self.first_pairs, self.vehicles = features, (pr, pc), n
            self.first_mask, self.first_candidates = np.asarray(observation.mask, dtype=bool), keep
            return PairScores(pr, pc, policy.network_scores(features, pr, n))
        # A re-scored vehicle whose mask the later loads left as it was has the first pass's candidates (they depend
        # on its own mask, distances and host only); the others' are found again. At stacked sites the unit that
        # stands in for its site can change with the loads: then every row is found again.
        keep = self.first_candidates[rows]
        spare = spare_units(observation)
        if _same_spare(spare, self.first_spare):
            changed = np.flatnonzero((observation.mask != self.first_mask[rows]).any(axis=1))
        else:
            changed = np.arange(len(rows))
        if changed.size:
            keep[changed] = candidates(
                observation.mask[changed],
                observation.distances_m[changed],
                observation.servers.is_satellite,
                host[changed],
                self.nearest,
                spare,
            )
        pr, pc = feasible_pairs(keep)
        if self.slot is None:
            first_rows, first_cols = self.first_pairs
            self.slot = np.full((self.vehicles, m), -1, dtype=np.int32)
            self.slot[first_rows, first_cols] = np.arange(len(first_rows), dtype=np.int32)
        slot = self.slot[rows[pr], pc]
        found = slot >= 0
        if found.all():
            features = self.features[slot]
        else:
            features = np.empty((len(pr), self.features.shape[1]), dtype=np.float32)
            features[found] = self.features[slot[found]]
            lacking = ~found
            features[lacking] = load_free_features(observation, host, policy.latency, (pr[lacking], pc[lacking]))
        self.reused_pairs += int(found.sum())
        self.computed_pairs += len(pr) - int(found.sum())
        set_load_features(
            features, observation.predicted_load_bits, observation.servers, host, policy.latency, (pr, pc)
        )
        return PairScores(pr, pc, policy.network_scores(features, pr, n))


class PerServerMigrationPolicy:
    """A trained per-server actor behind the migration interface."""

    needs_window_mean = False

    def __init__(self, manifest: ModelManifest, actor: PerServerActor, latency: LatencyModel) -> None:
        if manifest.kind != "migration":
            raise ModelSpecMismatch(f"model {manifest.name!r} is a {manifest.kind} model, not a migration one")
        self.manifest = manifest
        self.name = manifest.name
        self.version = manifest.version
        self.actor = actor
        self.latency = latency
        self.nearest = int(manifest.architecture.options.get("candidates", DEFAULT_CANDIDATES))
        """Candidates it learned to weigh (on a denser layout it weighs more: :meth:`nearest_for`)."""
        self.trained_reach = trained_reach(manifest)
        """:func:`sites_in_reach` of the layout it learned on; None: unknown, so it weighs :attr:`nearest` anywhere."""
        self.sampler = ExecutionSampler(manifest)
        self.fused = FusedPairScorer(actor)
        self.runtime = PerServerRuntime(actor) if onnx_graphs.available() else None
        """The actor as an ONNX Runtime graph (``policies.onnx_graphs``); None: the fused torch pass."""

    def nearest_for(self, observation: MigrationObservation) -> int:
        """The candidate count on the observation's layout (:func:`candidates_for`)."""
        return candidates_for(self.nearest, self.trained_reach, layout_reach(observation))

    def network_scores(self, features: NDArray[np.float32], rows: NDArray[np.intp], n: int) -> NDArray[np.float32]:
        """The actor's logit of each (vehicle, server) pair (``rows`` ascending): where the network's output is made."""
        if self.runtime is not None:
            return self.runtime(features, rows, n)
        with torch.inference_mode():
            return self.fused(torch.from_numpy(features), torch.from_numpy(rows).long(), n).numpy()

    def pair_scores(self, observation: MigrationObservation, host: NDArray[np.int64]) -> PairScores:
        """Every vehicle's candidate pairs (:func:`candidate_mask`) with their logits, every feature computed: what
        :class:`TurnScorer` is tested against."""
        pr, pc = feasible_pairs(candidate_mask(observation, host, self.nearest_for(observation)))
        features = per_server_features(observation, host, self.latency, (pr, pc))
        return PairScores(pr, pc, self.network_scores(features, pr, observation.mask.shape[0]))

    def logits(
        self, observation: MigrationObservation, host: NDArray[np.int64] | None, rows: object = None
    ) -> torch.Tensor:
        """``(V, M)`` logits of each vehicle's candidate servers (the others at ``MASKED_LOGIT``), by the actor module:
        what the reference path (:meth:`decide_reference`) and the trainers score with."""
        pr, pc = feasible_pairs(candidate_mask(observation, host, self.nearest_for(observation)))
        features = per_server_features(observation, host, self.latency, (pr, pc))
        with torch.inference_mode():
            return self.actor(
                torch.from_numpy(features),
                torch.from_numpy(pr).long(),
                torch.from_numpy(pc).long(),
                observation.mask.shape,
            )

    def decide(
        self,
        observation: MigrationObservation,
        servers: ServerTable,
        host: NDArray[np.int64] | None = None,
    ) -> MigrationDecision:
        """Every vehicle's next host, in turns (``policies.sequential``), by the fast path (each pair's load-free
        features once a tick: :class:`TurnScorer`): the same decisions as :meth:`decide_reference` (tested on
        recorded ticks)."""
        n = observation.mask.shape[0]
        sampler = self.sampler
        chunk = sampler.chunk or max(n, 1)
        order = sampler.order(n)
        target, probabilities = decide_in_turns_pairs(
            observation, host, TurnScorer(self), order, chunk, sampler.uniforms(n)
        )
        return MigrationDecision(target, probabilities)

    def decide_reference(
        self,
        observation: MigrationObservation,
        servers: ServerTable,
        host: NDArray[np.int64] | None = None,
    ) -> MigrationDecision:
        """The same decisions the plain way (``sequential.decide_in_turns`` over the actor module), kept as the
        reference the fast path is tested against."""
        return self.sampler.decide(observation, host, self.logits)


def trained_reach(manifest: ModelManifest) -> float | None:
    """:func:`sites_in_reach` of the layout a per-server model learned on: its manifest's ``reach_sites`` (trainers
    record it), else computed from its scenario when that loads here with the parameters it was trained on (the
    built-in city for the committed models); None otherwise."""
    stored = manifest.architecture.options.get("reach_sites")
    if stored is not None:
        return float(stored)
    return _scenario_reach(manifest.scenario, manifest.scenario_param_hash)


@lru_cache(maxsize=8)
def _scenario_reach(scenario: str, param_hash: str) -> float | None:
    try:
        loaded = Scenario.load(scenario)
    except Exception:  # noqa: BLE001 - any scenario that does not load here: the count stays the trained one
        return None
    if loaded.params.param_hash != param_hash:
        return None
    return layout_sites_in_reach(loaded.layout)


def layout_sites_in_reach(layout: EdgeLayout) -> float:
    """:func:`sites_in_reach` of a scenario's layout."""
    rsu = layout.rsu_indices
    return sites_in_reach(layout.xy_m[rsu], layout.range_m[rsu])


def build_migration_policy(
    manifest: ModelManifest,
    state_dict: Mapping[str, torch.Tensor],
    task: TaskParams | None = None,
    channel: ChannelParams | None = None,
    satellite: SatelliteParams | None = None,
) -> PerServerMigrationPolicy:
    """The per-server policy; its features are computed with the serving scenario's constants."""
    if manifest.observation.feature_dim != len(PER_SERVER_FEATURES):
        raise ModelSpecMismatch(f"model {manifest.name!r} expects {manifest.observation.feature_dim} features")
    actor = build_actor(manifest)
    try:
        actor.load_state_dict(dict(state_dict), strict=True)
    except RuntimeError as exc:
        raise ModelSpecMismatch(f"model {manifest.name!r}: weights do not fit its manifest: {exc}") from exc
    actor.eval()
    latency = LatencyModel(task or TaskParams(), channel or ChannelParams(), satellite or SatelliteParams())
    return PerServerMigrationPolicy(manifest, actor, latency)
