"""The papers' formulas, pure and vectorised: numpy in, numpy out, SI units.

This is the bottom layer: it imports nothing else of ours (constants arrive as arguments, read
by callers from ``twin_service.config``), does no I/O and knows nothing of SUMO, Redis or torch.

Modules (paper A = DM-MAPPO twin migration, paper B = AF-MARL federated offloading):

* :mod:`.geo` - haversine central angle and ground distance, UAV/satellite slant distance,
  vehicle x server and server x server distance matrices (paper A, Eq. 1-2).
* :mod:`.channel` - free-space gain (A, Eq. 3), Shannon rate (A, Eq. 4-5, 11), paper B's
  calibrated, truncated rate (B, Eq. 8) and noise conversion.
* :mod:`.migration` - access and migration latency (A, Eq. 6-7, 10-13), server load and backlog
  drain (A, Eq. 8), the satellite's finite queue, compute latency (A, Eq. 9), failure and packet
  loss (A, Eq. 14-15), load variance (A, Eq. 16b), running z-score and rewards (A, Eq. 21-22),
  dynamic mask (A, Eq. 23).
* :mod:`.offload` - local and edge delay/energy, RSU CPU share, price, cost and reward for a
  partial offloading fraction (B, Eq. 5-15, 21-22, 53, C.6).
"""

from twin_service.physics.channel import (
    MIN_LINK_DISTANCE_M,
    calibrated_channel_gain_sq,
    dbm_to_w,
    free_space_gain,
    free_space_rate_bps,
    noise_power_w,
    offload_rate_bps,
    shannon_rate_bps,
)
from twin_service.physics.geo import (
    EARTH_RADIUS_M,
    SPEED_OF_LIGHT_MPS,
    distance_matrix_from_units_m,
    distance_matrix_m,
    ground_distance_m,
    haversine_central_angle_rad,
    projected_distance_matrix_m,
    server_distance_matrix_m,
    slant_distance_m,
    unit_vectors,
)
from twin_service.physics.migration import (
    RunningZScore,
    access_latency_s,
    compute_latency_s,
    drain_backlog_bits,
    load_variance,
    migration_flag,
    migration_latency_s,
    migration_mask,
    migration_rate_bps,
    migration_rate_matrix_bps,
    nearest_feasible_server,
    packet_loss_rate,
    satellite_leg_delay_matrix_s,
    satellite_leg_delay_s,
    satellite_propagation_delay_s,
    satellite_queue_bits,
    server_load_bits,
    service_failure,
    shaped_reward,
    total_latency_s,
    unshaped_reward,
)
from twin_service.physics.offload import (
    OffloadOutcome,
    download_delay_s,
    edge_compute_delay_s,
    edge_compute_energy_j,
    edge_cpu_share_hz,
    local_delay_s,
    local_energy_j,
    local_part_delay_s,
    local_part_energy_j,
    offload_cost,
    offload_delay_s,
    offload_energy_j,
    offload_outcome,
    offload_reward,
    radio_energy_j,
    service_price,
    task_success,
    upload_delay_s,
)

__all__ = [
    "EARTH_RADIUS_M",
    "MIN_LINK_DISTANCE_M",
    "SPEED_OF_LIGHT_MPS",
    "OffloadOutcome",
    "RunningZScore",
    "access_latency_s",
    "calibrated_channel_gain_sq",
    "compute_latency_s",
    "dbm_to_w",
    "distance_matrix_from_units_m",
    "distance_matrix_m",
    "projected_distance_matrix_m",
    "download_delay_s",
    "drain_backlog_bits",
    "edge_compute_delay_s",
    "edge_compute_energy_j",
    "edge_cpu_share_hz",
    "free_space_gain",
    "free_space_rate_bps",
    "ground_distance_m",
    "haversine_central_angle_rad",
    "load_variance",
    "local_delay_s",
    "local_energy_j",
    "local_part_delay_s",
    "local_part_energy_j",
    "migration_flag",
    "migration_latency_s",
    "migration_mask",
    "migration_rate_bps",
    "migration_rate_matrix_bps",
    "nearest_feasible_server",
    "noise_power_w",
    "offload_cost",
    "offload_delay_s",
    "offload_energy_j",
    "offload_outcome",
    "offload_rate_bps",
    "offload_reward",
    "packet_loss_rate",
    "radio_energy_j",
    "satellite_leg_delay_matrix_s",
    "satellite_leg_delay_s",
    "satellite_propagation_delay_s",
    "satellite_queue_bits",
    "server_distance_matrix_m",
    "server_load_bits",
    "service_failure",
    "service_price",
    "shannon_rate_bps",
    "shaped_reward",
    "slant_distance_m",
    "unit_vectors",
    "task_success",
    "total_latency_s",
    "unshaped_reward",
    "upload_delay_s",
]
