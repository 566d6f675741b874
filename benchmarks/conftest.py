import pytest
import torch


def pytest_benchmark_update_json(config, benchmarks, output_json):
    output_json["torch_threads"] = torch.get_num_threads()


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
