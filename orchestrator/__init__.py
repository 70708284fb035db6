"""farm: benchmark ML models across a farm of edge boards."""

__version__ = "0.1.0"
