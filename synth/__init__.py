"""The synthetic city: a true world of people and the messy daily extracts its departments send."""

from synth.city import CitySummary, generate_city

__all__ = ["CitySummary", "generate_city"]
