import random

import numpy as np
import pytest
import torch

from lstmkit.train import get_rng_state, seed_everything, set_rng_state


def draw(generators=None):
    values = [random.random(), float(np.random.rand()), torch.rand(1).item()]
    for generator in (generators or {}).values():
        if isinstance(generator, torch.Generator):
            values.append(torch.rand(1, generator=generator).item())
        elif isinstance(generator, np.random.Generator):
            values.append(float(generator.random()))
        else:
            values.append(generator.random())
    return values


def make_generators(seed):
    return {
        "torch": torch.Generator().manual_seed(seed),
        "pcg": np.random.default_rng(seed),
        "mt": np.random.Generator(np.random.MT19937(seed)),
        "python": random.Random(seed),
    }


def test_seed_everything_is_reproducible():
    seed_everything(5)
    first = draw()
    seed_everything(5)
    assert draw() == first
    seed_everything(6)
    assert draw() != first


def test_rng_state_round_trip_covers_every_generator():
    seed_everything(0)
    generators = make_generators(1)
    draw(generators)
    state = get_rng_state(generators)
    expected = draw(generators)
    seed_everything(123)
    other = make_generators(99)
    set_rng_state(state, other)
    assert draw(other) == expected


def test_gaussian_cache_is_restored():
    seed_everything(0)
    random.gauss(0, 1)  # leaves a cached second normal in python's state
    np.random.standard_normal()
    state = get_rng_state()
    expected = [random.gauss(0, 1), float(np.random.standard_normal())]
    seed_everything(1)
    set_rng_state(state)
    assert [random.gauss(0, 1), float(np.random.standard_normal())] == expected


def test_generator_names_and_kinds_must_match():
    state = get_rng_state({"shuffle": torch.Generator()})
    with pytest.raises(KeyError, match=r"saved generators \['shuffle'\] but given \[\]"):
        set_rng_state(state)
    with pytest.raises(TypeError, match="saved as a torch generator but a Random was given"):
        set_rng_state(state, {"shuffle": random.Random()})
    with pytest.raises(TypeError, match="cannot save the state of a int"):
        get_rng_state({"bad": 3})


def test_bad_seed():
    with pytest.raises(ValueError, match=r"seed must be in \[0, 2\*\*32\)"):
        seed_everything(-1)
