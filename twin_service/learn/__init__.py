"""Trainers, one readable file per algorithm, and the small pure pieces they share.

* :mod:`.masked` - a categorical distribution over the feasible actions only (masked logits, masked entropy).
* :mod:`.gae` - generalised advantage estimation over agents that come and go.
* :mod:`.valuenorm` - running normalisation of value targets (MAPPO's ValueNorm).
* :mod:`.dm_mappo` - DM-MAPPO (paper A): masked multi-agent PPO with a centralised critic.
* :mod:`.masac` - MASAC, paper A's learned baseline: discrete soft actor-critic with twin critics.
* :mod:`.af_marl` - AF-MARL (paper B): TD3 with a CVAE context, semi-synchronous federated learning;
  :mod:`.afl_maddpg`, :mod:`.sfl_ppo`, :mod:`.ddqn` - its baselines; :mod:`.offload_loop` - the loop they share
  (each gives its networks and its update); :mod:`.td3`, :mod:`.offload_common`.

Serving never imports this package: trainers save actors with ``policies.registry.save_model``.
"""
