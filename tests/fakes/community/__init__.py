"""The community world: a second fake Hub/Civitai world (pack-documented originals + rule-made decoys)
and the workflows written from public pack examples that are scored on it. See world.py, workflows.py."""
from .world import CommunityWorld, Truth, build_world

__all__ = ["CommunityWorld", "Truth", "build_world"]
