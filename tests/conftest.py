"""Fixtures shared by the test modules."""
import pytest
import torch


@pytest.fixture
def one_thread():
    """One torch thread for the test (restored after): training results then match those of worker processes,
    which train with one thread each, and the test does not compete with them for the cores."""
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(saved)


@pytest.fixture(scope="module")
def one_thread_per_module():
    """``one_thread`` for every test of a module (``pytestmark = pytest.mark.usefixtures(...)``)."""
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(saved)
