"""Building and importing SUMO scenarios; the edge-server layout (RSUs, UAV patrols, satellite)."""
