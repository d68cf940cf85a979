"""twin-service: SUMO co-simulation digital twins for the Internet of Vehicles."""

__version__ = "0.1.0"
