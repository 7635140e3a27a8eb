"""Drop-in modules with torch's contract."""

from .lstm import LSTM, LSTMCell

__all__ = ["LSTM", "LSTMCell"]
