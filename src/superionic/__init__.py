"""superionic: ML pipelines for Li solid-state electrolyte discovery."""

__version__ = "0.1.0"
