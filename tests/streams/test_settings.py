"""Settings come from SECMLOPS_* variables, with defaults that run the local stack."""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.settings import Settings, SettingsError


def test_defaults_use_ports_away_from_a_users_own_kafka_and_redis():
    s = Settings.from_env({})
    assert s.kafka_bootstrap == "127.0.0.1:19092"
    assert s.kafka_controller_port == 19093
    assert s.redis_url == "redis://127.0.0.1:16379/0"
    assert s.kafka_managed
    assert s.redis_managed


def test_ports_and_folders_are_configurable():
    s = Settings.from_env(
        {
            "SECMLOPS_KAFKA_PORT": "29092",
            "SECMLOPS_KAFKA_CONTROLLER_PORT": "29093",
            "SECMLOPS_REDIS_PORT": "26379",
            "SECMLOPS_STATE_DIR": "/srv/state",
            "SECMLOPS_CACHE_DIR": "/srv/cache",
        }
    )
    assert s.kafka_bootstrap == "127.0.0.1:29092"
    assert s.redis_url == "redis://127.0.0.1:26379/0"
    assert s.state_dir == Path("/srv/state")
    assert s.cache_dir == Path("/srv/cache")


def test_external_services_are_not_managed():
    s = Settings.from_env(
        {"SECMLOPS_KAFKA_BOOTSTRAP": "k1:9092,k2:9092", "SECMLOPS_REDIS_URL": "rediss://r:6380/2"}
    )
    assert not s.kafka_managed
    assert not s.redis_managed
    assert s.kafka_bootstrap == "k1:9092,k2:9092"
    assert s.redis_url == "rediss://r:6380/2"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SECMLOPS_KAFKA_PORT", "not-a-port"),
        ("SECMLOPS_KAFKA_PORT", "70000"),
        ("SECMLOPS_WORKER_BATCH_SIZE", "0"),
        ("SECMLOPS_WORKER_BATCH_WAIT", "soon"),
        ("SECMLOPS_KAFKA_SECURITY_PROTOCOL", "TLS"),
        ("SECMLOPS_TUNE_MALLOC", "yes"),
    ],
)
def test_bad_values_are_errors_that_name_the_variable(name, value):
    with pytest.raises(SettingsError, match=name):
        Settings.from_env({name: value})


def test_sasl_needs_a_mechanism():
    with pytest.raises(SettingsError, match="SASL_MECHANISM"):
        Settings.from_env({"SECMLOPS_KAFKA_SECURITY_PROTOCOL": "SASL_SSL"})


def test_secrets_are_kept_out_of_repr():
    s = Settings.from_env(
        {
            "SECMLOPS_KAFKA_SECURITY_PROTOCOL": "sasl_ssl",
            "SECMLOPS_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
            "SECMLOPS_KAFKA_SASL_USERNAME": "pds",
            "SECMLOPS_KAFKA_SASL_PASSWORD": "hunter2",
            "SECMLOPS_REDIS_PASSWORD": "s3cret",
        }
    )
    assert s.kafka_security.protocol == "SASL_SSL"
    assert "hunter2" not in repr(s)
    assert "s3cret" not in repr(s)


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_two_detector_batches_are_in_flight_by_default_on_any_device(device):
    # Two keep the model busy while the last batch's outcomes are sent; monitors' checks
    # go ahead of the queued one (streams.device_thread), so a CPU needs no other default.
    assert Settings.from_env({"SECMLOPS_DEVICE": device}).worker_in_flight == 2


@pytest.mark.parametrize("value", ["0", "9"])
def test_batches_in_flight_out_of_range_are_refused_by_name(value):
    with pytest.raises(SettingsError, match=f"SECMLOPS_WORKER_IN_FLIGHT={value}"):
        Settings.from_env({"SECMLOPS_WORKER_IN_FLIGHT": value})


def test_the_allocator_is_tuned_unless_turned_off():
    assert Settings.from_env({}).tune_malloc
    assert not Settings.from_env({"SECMLOPS_TUNE_MALLOC": "0"}).tune_malloc


def test_a_worker_gives_opencv_one_thread_unless_told_otherwise():
    # The cores are the model's; monitors call OpenCV from threads of their own.
    assert Settings.from_env({}).worker_opencv_threads == 1
    assert Settings.from_env({"SECMLOPS_WORKER_OPENCV_THREADS": "0"}).worker_opencv_threads == 0


def test_a_negative_opencv_thread_count_is_refused_by_name():
    with pytest.raises(SettingsError, match="SECMLOPS_WORKER_OPENCV_THREADS=-1"):
        Settings.from_env({"SECMLOPS_WORKER_OPENCV_THREADS": "-1"})


def test_cpu_lanes_default_to_one_per_core_and_a_count_can_be_set():
    assert Settings.from_env({}).worker_cpu_lanes == 0  # 0: one per usable core
    assert Settings.from_env({"SECMLOPS_WORKER_CPU_LANES": "1"}).worker_cpu_lanes == 1
    with pytest.raises(SettingsError, match="SECMLOPS_WORKER_CPU_LANES=-1"):
        Settings.from_env({"SECMLOPS_WORKER_CPU_LANES": "-1"})


def test_a_workers_producer_lingers_10_ms_to_batch_its_records_unless_told_otherwise():
    # Each monitor adds records; batched, the broker and the event loop handle fewer requests.
    assert Settings.from_env({}).worker_producer_linger_s == 0.01
    assert Settings.from_env({"SECMLOPS_WORKER_PRODUCER_LINGER": "0"}).worker_producer_linger_s == 0


def test_a_producer_linger_over_a_second_is_refused_by_name():
    with pytest.raises(SettingsError, match="SECMLOPS_WORKER_PRODUCER_LINGER=5"):
        Settings.from_env({"SECMLOPS_WORKER_PRODUCER_LINGER": "5"})
