"""Process counts that cannot work are refused before any process starts."""

from __future__ import annotations

import pytest

from streams.settings import Settings
from streams.worker_pool import check_processes


@pytest.mark.parametrize("count", [1, 2, 4])
def test_one_process_up_to_one_per_partition_is_accepted(count):
    check_processes(count, Settings.from_env({}), partitions=4)


@pytest.mark.parametrize("count", [0, 5])
def test_more_processes_than_partitions_or_none_are_refused_with_the_reason(count):
    with pytest.raises(ValueError, match="gets no frames"):
        check_processes(count, Settings.from_env({}), partitions=4)


def test_the_web_ports_counted_up_from_the_base_must_exist():
    settings = Settings.from_env({"SECMLOPS_WORKER_WEB_PORT": "65535"})
    check_processes(1, settings, partitions=4)
    with pytest.raises(ValueError, match="no room for 2 web ports"):
        check_processes(2, settings, partitions=4)


def test_the_default_comes_from_the_environment():
    assert Settings.from_env({}).worker_processes == 1
    assert Settings.from_env({"SECMLOPS_WORKER_PROCESSES": "4"}).worker_processes == 4
