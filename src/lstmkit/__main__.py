"""``python -m lstmkit`` runs the ``lstmkit`` command; ``torchrun ... -m lstmkit train-lm ...`` starts it on each rank."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
