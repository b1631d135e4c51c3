"""docker-compose.yml and the Dockerfile agree with the local stack, checked without Docker."""

from __future__ import annotations

import inspect
import re
import shlex
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml
from packaging.specifiers import SpecifierSet
from packaging.version import Version

import streams.settings
from streams.cli import cli
from streams.settings import Settings
from streams.stack.jars import KAFKA_VERSION
from streams.stack.kafka import server_properties
from streams.stack.redis import RedisService

ROOT = Path(__file__).resolve().parents[1]

# Broker settings that must be equal in the local stack and in compose.
MIRRORED_BROKER_KEYS = (
    "process.roles",
    "node.id",
    "controller.listener.names",
    "auto.create.topics.enable",
    "num.partitions",
    "default.replication.factor",
    "min.insync.replicas",
    "offsets.topic.replication.factor",
    "offsets.topic.num.partitions",
    "transaction.state.log.replication.factor",
    "transaction.state.log.min.isr",
    "transaction.state.log.num.partitions",
    "share.coordinator.state.topic.replication.factor",
    "share.coordinator.state.topic.min.isr",
    "group.initial.rebalance.delay.ms",
    "num.network.threads",
    "num.io.threads",
    "num.recovery.threads.per.data.dir",
    "log.cleaner.threads",
    "log.cleaner.dedupe.buffer.size",
    "log.segment.bytes",
    "log.index.size.max.bytes",
)
# Broker settings that name hosts, ports, listeners or paths, which differ in containers.
CONTAINER_SPECIFIC_BROKER_KEYS = (
    "listeners",
    "advertised.listeners",
    "listener.security.protocol.map",
    "inter.broker.listener.name",
    "controller.quorum.voters",
    "log.dirs",
)
# KAFKA_* variables that the apache/kafka image passes to the JVM, not to server.properties.
KAFKA_JVM_ENV = ("KAFKA_HEAP_OPTS", "KAFKA_OPTS", "KAFKA_JVM_PERFORMANCE_OPTS", "KAFKA_JMX_OPTS")


def _defaults() -> Settings:
    return Settings.from_env({})


def _compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def _service(name: str) -> dict:
    services = _compose()["services"]
    assert name in services, f"docker-compose.yml has no {name!r} service"
    return services[name]


def _env(service: dict) -> dict[str, str]:
    raw = service.get("environment", {})
    if isinstance(raw, list):
        raw = dict(item.split("=", 1) for item in raw)
    for key, value in raw.items():
        # compose rejects booleans: "false" must be quoted.
        assert isinstance(value, str | int), f"{key}={value!r} must be a string or a number"
    return {key: str(value) for key, value in raw.items()}


def _ports(service: dict) -> list[tuple[str | None, int, int]]:
    """(host address, host port, container port) for each published port."""
    published = []
    for entry in service.get("ports", []):
        if isinstance(entry, dict):
            published.append((entry.get("host_ip"), int(entry["published"]), int(entry["target"])))
            continue
        *host, container = str(entry).split(":")
        address = host[0] if len(host) == 2 else None
        published.append((address, int(host[-1]), int(container)))
    return published


def _property_name(env_name: str) -> str:
    """The apache/kafka image's rule: _ is a dot, __ an underscore, ___ a dash, lower case."""
    key = env_name.removeprefix("KAFKA_")
    key = re.sub(r"(?<!_)_(?!_)", ".", key)
    return key.replace("___", "-").replace("__", "_").lower()


def _compose_broker_properties() -> dict[str, str]:
    return {
        _property_name(name): value
        for name, value in _env(_service("kafka")).items()
        if name.startswith("KAFKA_") and name not in KAFKA_JVM_ENV
    }


def _local_broker_properties() -> dict[str, str]:
    text = server_properties(_defaults(), Path("/x"))
    lines = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
    return dict(line.split("=", 1) for line in lines)


def _listeners(spec: str) -> dict[str, tuple[str, int]]:
    """NAME://host:port,... as {NAME: (host, port)}."""
    found = {}
    for item in spec.split(","):
        name, address = item.split("://", 1)
        host, port = address.rsplit(":", 1)
        found[name] = (host, int(port))
    return found


def _dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) for each instruction, continuation lines joined."""
    instructions, pending = [], ""
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        keyword, _, args = (pending + line).strip().partition(" ")
        instructions.append((keyword.upper(), args.strip()))
        pending = ""
    return instructions


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_kafka_image_matches_pinned_broker_version():
    assert _service("kafka")["image"] == f"apache/kafka:{KAFKA_VERSION}"


def test_kafka_host_port_is_the_local_stack_port():
    settings = _defaults()
    external = _listeners(_env(_service("kafka"))["KAFKA_ADVERTISED_LISTENERS"])["EXTERNAL"]
    bound = _listeners(_env(_service("kafka"))["KAFKA_LISTENERS"])["EXTERNAL"]
    assert external == ("localhost", settings.kafka_port)
    assert [(port, target) for _, port, target in _ports(_service("kafka"))] == [
        (settings.kafka_port, bound[1])
    ]


def test_redis_host_port_is_the_local_stack_port():
    assert [(port, target) for _, port, target in _ports(_service("redis"))] == [
        (_defaults().redis_port, 6379)
    ]


def test_published_ports_listen_on_loopback_only():
    for name, service in _compose()["services"].items():
        for address, port, _ in _ports(service):
            assert address == "127.0.0.1", f"{name} publishes port {port} on every interface"


def test_broker_settings_match_the_local_stack():
    local, compose = _local_broker_properties(), _compose_broker_properties()
    for key in MIRRORED_BROKER_KEYS:
        assert key in compose, f"docker-compose.yml does not set {key}"
        assert compose[key] == local[key], f"{key}: compose {compose[key]}, local {local[key]}"


def test_every_local_broker_setting_is_mirrored_or_deliberately_different():
    assert set(_local_broker_properties()) == {
        *MIRRORED_BROKER_KEYS,
        *CONTAINER_SPECIFIC_BROKER_KEYS,
    }
    assert set(CONTAINER_SPECIFIC_BROKER_KEYS) <= set(_compose_broker_properties())


def test_kafka_heap_is_the_local_stack_default():
    heap = _env(_service("kafka"))["KAFKA_HEAP_OPTS"].split()
    assert f"-Xmx{_defaults().kafka_heap}" in heap


def test_kafka_listeners_are_consistent():
    props = _compose_broker_properties()
    bound = _listeners(props["listeners"])
    advertised = _listeners(props["advertised.listeners"])
    protocols = dict(item.split(":") for item in props["listener.security.protocol.map"].split(","))
    assert set(bound) == set(protocols)
    assert set(advertised) == set(bound) - {props["controller.listener.names"]}
    assert {port for _, port in advertised.values()} == {port for _, port in bound.values()} - {
        bound[props["controller.listener.names"]][1]
    }
    assert props["inter.broker.listener.name"] in advertised
    host, port = bound[props["controller.listener.names"]]
    assert props["controller.quorum.voters"] == f"{props['node.id']}@{host}:{port}"


def test_kafka_healthcheck_asks_the_container_listener():
    test = _service("kafka")["healthcheck"]["test"]
    internal_port = _listeners(_compose_broker_properties()["listeners"])["INTERNAL"][1]
    assert test[0] == "CMD"
    assert test[1] == "/opt/kafka/bin/kafka-broker-api-versions.sh"
    assert test[2:] == ["--bootstrap-server", f"localhost:{internal_port}"]


def test_worker_environment_names_are_real_settings():
    source = inspect.getsource(streams.settings)
    env = _env(_service("worker"))
    assert env
    for name, value in env.items():
        assert name.startswith(streams.settings.ENV_PREFIX)
        suffix = name.removeprefix(streams.settings.ENV_PREFIX)
        assert f'"{suffix}"' in source, f"{name} is not read by streams/settings.py"
        assert Settings.from_env({name: value}) != _defaults(), f"{name}={value} changes nothing"


def test_worker_reaches_kafka_on_the_internal_listener():
    settings = Settings.from_env(_env(_service("worker")))
    host, port = _listeners(_compose_broker_properties()["advertised.listeners"])["INTERNAL"]
    assert settings.kafka_bootstrap == f"{host}:{port}"
    assert host in _compose()["services"]


def test_worker_reaches_redis_inside_the_network():
    url = urlsplit(Settings.from_env(_env(_service("worker"))).redis_url)
    assert url.hostname in _compose()["services"]
    assert url.port in {target for _, _, target in _ports(_service(url.hostname))}


def test_worker_starts_after_healthy_kafka_and_redis():
    worker = _service("worker")
    assert worker["depends_on"] == {
        "kafka": {"condition": "service_healthy"},
        "redis": {"condition": "service_healthy"},
    }
    for name in worker["depends_on"]:
        assert _service(name)["healthcheck"]["test"]
    assert worker["build"] == "."
    assert worker["restart"] == "unless-stopped"


def test_docker_waits_for_the_workers_drain_before_killing_it():
    # On SIGTERM a worker drains for up to SECMLOPS_WORKER_DRAIN_TIMEOUT, then faust stops;
    # killed sooner, its frames in flight are read and predicted again by the next owner.
    grace = _service("worker")["stop_grace_period"]
    seconds = int(re.fullmatch(r"(\d+)s", grace).group(1))
    drain = Settings.from_env(_env(_service("worker"))).worker_drain_timeout_s
    assert seconds >= drain + 30, f"stop_grace_period {grace} < drain {drain:g} s + 30 s"


def test_redis_persists_like_the_local_stack(tmp_path):
    local = dict(
        line.split(" ", 1)
        for line in RedisService(Settings.from_env({"SECMLOPS_STATE_DIR": str(tmp_path)}))
        .config()
        .splitlines()
    )
    command = _service("redis")["command"]
    if isinstance(command, str):
        command = shlex.split(command)
    assert command[0] == "redis-server"
    options = dict(zip(command[1::2], command[2::2], strict=True))
    for key in ("appendonly", "appendfsync", "save"):
        assert options.get(f"--{key}") == local[key], key
    assert options["--appendonly"] == "yes"


def test_redis_data_lives_in_a_named_volume():
    volumes = _service("redis")["volumes"]
    named = [entry.split(":")[0] for entry in volumes if entry.split(":")[1] == "/data"]
    assert named
    assert named[0] in _compose()["volumes"]


def test_dockerfile_base_python_satisfies_requires_python():
    bases = [args for keyword, args in _dockerfile() if keyword == "FROM"]
    assert len(bases) == 1
    match = re.fullmatch(r"python:(\d+\.\d+\.\d+)-slim-\w+", bases[0].split()[0])
    assert match, f"base image {bases[0]!r} is not a pinned python:X.Y.Z-slim-<debian> tag"
    requires = _pyproject()["project"]["requires-python"]
    assert SpecifierSet(requires).contains(Version(match.group(1)))


def test_dockerfile_installs_runtime_dependencies_with_constraints():
    instructions = _dockerfile()
    installs = [
        args for keyword, args in instructions if keyword == "RUN" and "pip install" in args
    ]
    assert len(installs) == 1
    command = installs[0].split("&&")[0].split()
    assert command[command.index("-c") + 1] == "constraints.txt"
    assert command[-1] == "."
    assert not any("[" in word for word in command), "installs extras (dev tools) too"
    copied = " ".join(args for keyword, args in instructions if keyword == "COPY")
    assert "constraints.txt" in copied.split()


@pytest.mark.parametrize(
    "pattern", _pyproject()["tool"]["setuptools"]["packages"]["find"]["include"]
)
def test_dockerfile_copies_every_package(pattern):
    package = pattern.rstrip("*")
    copies = [args.split() for keyword, args in _dockerfile() if keyword == "COPY"]
    assert any(package in sources[:-1] for sources in copies), f"{package} is not copied"


def test_dockerfile_runs_the_worker_as_non_root():
    instructions = _dockerfile()
    users = [args for keyword, args in instructions if keyword == "USER"]
    assert users
    assert users[-1] not in {"root", "0"}
    entrypoint = [yaml.safe_load(args) for keyword, args in instructions if keyword == "ENTRYPOINT"]
    command = [yaml.safe_load(args) for keyword, args in instructions if keyword == "CMD"]
    assert entrypoint == [["secmlops"]]
    assert "secmlops" in _pyproject()["project"]["scripts"]
    assert command == [["worker"]]
    assert "worker" in cli.commands
