"""lstmkit: readable, fast LSTMs for PyTorch.

``lstmkit.LSTM`` and ``lstmkit.LSTMCell`` are drop-ins for torch's modules; ``lstmkit.ops`` holds the math.
"""

from . import ops
from .nn import LSTM, LSTMCell

__version__ = "0.1.0"
__all__ = ["LSTM", "LSTMCell", "ops", "__version__"]
