"""Shared set-up for the explain tests."""

import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread():
    """Run each test on one CPU thread, then restore the setting.

    The tensors here are tiny: a second thread gains nothing, and on a shared, busy machine the threads of
    torch's pool wait for each other and make these tests several times slower.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
