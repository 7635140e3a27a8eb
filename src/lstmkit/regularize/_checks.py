"""Argument checks shared by the regularizers."""


def check_probability(p: float) -> None:
    """Raise ``ValueError`` (torch's wording) unless ``0 <= p <= 1``."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")


def keep_mask_scale(p: float) -> float:
    """Factor that rescales survivors so the expectation is unchanged: ``1 / (1 - p)`` (0 when ``p == 1``)."""
    return 0.0 if p == 1.0 else 1.0 / (1.0 - p)
