"""transferlab: measured, interactive lessons on transfer learning (see the notebooks)."""

__version__ = "0.1.0"
