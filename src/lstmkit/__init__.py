"""lstmkit: readable, fast LSTMs for PyTorch."""

__version__ = "0.1.0"
