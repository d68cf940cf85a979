"""Errors of the policies package."""

from __future__ import annotations


class PolicyError(ValueError):
    """A policy cannot be built or cannot serve these inputs."""


class UnknownPolicyError(PolicyError, LookupError):
    """No heuristic and no stored model has this name (for this kind of decision)."""

    def __str__(self) -> str:  # LookupError subclasses of KeyError would quote it; keep it plain
        return str(self.args[0]) if self.args else ""


class ModelError(PolicyError):
    """A stored model is missing, unreadable or inconsistent."""


class ModelSpecMismatch(ModelError):
    """A model's observation/action spec or scenario parameters differ from what it would serve."""


class ModelOutputError(ModelError):
    """A model produced something that must never reach a decision (NaN or infinity); it is refused, not served."""
