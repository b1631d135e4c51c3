"""Runtime configuration, read once from ``SECMLOPS_*`` environment variables.

Every knob of the monitor lives here, so that one file answers "what can I
configure, and what is the default?".  Secrets (SASL passwords, Redis
passwords, signing keys) are only ever read from the environment, never from
code or from files committed to the repository.

``Settings`` is frozen: components receive it explicitly instead of reading
the environment on their own, which keeps tests free of hidden globals.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["KafkaSecurity", "Settings", "SettingsError"]

ENV_PREFIX = "SECMLOPS_"


class SettingsError(ValueError):
    """An environment variable holds a value the monitor cannot use."""


def _xdg(var: str, fallback: str) -> Path:
    base = os.environ.get(var)
    return Path(base) if base else Path.home() / fallback


def _int(env: Mapping[str, str], name: str, default: int, lo: int, hi: int) -> int:
    raw = env.get(ENV_PREFIX + name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{ENV_PREFIX}{name}={raw!r} is not an integer") from None
    if not lo <= value <= hi:
        raise SettingsError(f"{ENV_PREFIX}{name}={value} is outside [{lo}, {hi}]")
    return value


def _float(env: Mapping[str, str], name: str, default: float, lo: float, hi: float) -> float:
    raw = env.get(ENV_PREFIX + name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{ENV_PREFIX}{name}={raw!r} is not a number") from None
    if not lo <= value <= hi:
        raise SettingsError(f"{ENV_PREFIX}{name}={value} is outside [{lo}, {hi}]")
    return value


def _choice(env: Mapping[str, str], name: str, default: str, allowed: tuple[str, ...]) -> str:
    value = (env.get(ENV_PREFIX + name) or default).lower()
    if value not in allowed:
        raise SettingsError(f"{ENV_PREFIX}{name}={value!r}; expected one of {', '.join(allowed)}")
    return value


def _str(env: Mapping[str, str], name: str, default: str | None = None) -> str | None:
    raw = env.get(ENV_PREFIX + name)
    return raw if raw else default


def _names(env: Mapping[str, str], name: str, default: str) -> tuple[str, ...]:
    """A comma-separated list of names (monitors, kinds), blanks dropped."""
    return tuple(m.strip() for m in (_str(env, name) or default).split(",") if m.strip())


@dataclass(frozen=True)
class KafkaSecurity:
    """TLS/SASL settings passed through unchanged to every Kafka client.

    Empty means PLAINTEXT, which is what the local stack speaks.
    """

    protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: str | None = field(default=None, repr=False)
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None

    PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")

    def __post_init__(self) -> None:
        if self.protocol not in self.PROTOCOLS:
            raise SettingsError(
                f"{ENV_PREFIX}KAFKA_SECURITY_PROTOCOL={self.protocol!r}; "
                f"expected one of {', '.join(self.PROTOCOLS)}"
            )
        if self.protocol.startswith("SASL") and not self.sasl_mechanism:
            raise SettingsError(
                f"{ENV_PREFIX}KAFKA_SECURITY_PROTOCOL={self.protocol} needs "
                f"{ENV_PREFIX}KAFKA_SASL_MECHANISM (PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512)"
            )


@dataclass(frozen=True)
class Settings:
    """Everything configurable, with defaults that run the local stack.

    Build it with :meth:`from_env`; each field names its environment variable
    in the README's configuration table.
    """

    state_dir: Path
    cache_dir: Path
    kafka_host: str = "127.0.0.1"
    kafka_port: int = 19092
    kafka_controller_port: int = 19093
    kafka_heap: str = "512m"
    kafka_external_bootstrap: str | None = None
    kafka_connect_timeout_s: float = 10.0
    kafka_security: KafkaSecurity = KafkaSecurity()
    redis_port: int = 16379
    redis_external_url: str | None = None
    redis_password: str | None = field(default=None, repr=False)
    java: str | None = None
    maven_repo: str = "https://repo1.maven.org/maven2"
    app_id: str = "secmlops-pds"
    worker_batch_size: int = 32
    worker_batch_wait_s: float = 0.05  # each agent's wait for a batch to fill (README)
    worker_in_flight: int = 2  # detector batches in flight (streams.inflight)
    worker_opencv_threads: int = 1  # OpenCV's threads in a worker; 0: its default (streams.worker)
    worker_cpu_lanes: int = 0  # CPU batch parts side by side; 0: one per core (streams.cpu_lanes)
    worker_processes: int = 1  # `secmlops worker` processes on this host (streams.worker_pool)
    worker_fetch_bytes: int = 8 * 1024**2  # most bytes fetched per partition at once
    worker_stream_buffer: int = 128  # records an agent may have queued (streams.app)
    worker_producer_linger_s: float = 0.01  # a worker's producer waits this long to batch (README)
    worker_drain_timeout_s: float = 60.0
    worker_session_timeout_s: float = 60.0
    worker_commit_interval_s: float = 2.8
    worker_web_port: int = 6066
    startup_timeout_s: float = 90.0
    frame_key: str | None = field(default=None, repr=False)
    frame_key_id: str = "k1"
    frame_keys_file: Path | None = None
    claim_check_ttl_s: int = 3600
    model_name: str = "pedestrian"
    model_signing_key: str | None = field(default=None, repr=False)
    model_trusted_keys: tuple[str, ...] = ()
    device: str = "auto"
    half: bool = True
    tune_malloc: bool = True  # glibc allocator set up for torch on a CPU (streams.allocator)
    actor: str = "unknown"
    monitors: tuple[str, ...] = ("all",)
    monitor_checkpoint_s: float = 10.0
    gate: bool = True
    gate_require: tuple[str, ...] | None = None
    gate_deadline_s: float = 5.0
    gate_signal_ttl_s: float = 600.0
    gate_fail_open: bool = False
    gate_quarantine_on: tuple[str, ...] = ("integrity", "adversarial")
    quarantine_retention_s: int = 7 * 86400
    policy_file: Path | None = None
    policy_dry_run: bool = False

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read settings from ``env`` (default: ``os.environ``).

        Raises
        ------
        SettingsError
            When a variable is present but unusable, naming the variable.
        """
        env = os.environ if env is None else env
        state = _str(env, "STATE_DIR")
        cache = _str(env, "CACHE_DIR")
        security = KafkaSecurity(
            protocol=(_str(env, "KAFKA_SECURITY_PROTOCOL", "PLAINTEXT") or "PLAINTEXT").upper(),
            sasl_mechanism=_str(env, "KAFKA_SASL_MECHANISM"),
            sasl_username=_str(env, "KAFKA_SASL_USERNAME"),
            sasl_password=_str(env, "KAFKA_SASL_PASSWORD"),
            ssl_cafile=_str(env, "KAFKA_SSL_CAFILE"),
            ssl_certfile=_str(env, "KAFKA_SSL_CERTFILE"),
            ssl_keyfile=_str(env, "KAFKA_SSL_KEYFILE"),
        )
        return cls(
            state_dir=Path(state) if state else _xdg("XDG_STATE_HOME", ".local/state") / "secmlops",
            cache_dir=Path(cache) if cache else _xdg("XDG_CACHE_HOME", ".cache") / "secmlops",
            kafka_host=_str(env, "KAFKA_HOST", "127.0.0.1") or "127.0.0.1",
            kafka_port=_int(env, "KAFKA_PORT", 19092, 1, 65535),
            kafka_controller_port=_int(env, "KAFKA_CONTROLLER_PORT", 19093, 1, 65535),
            kafka_heap=_str(env, "KAFKA_HEAP", "512m") or "512m",
            kafka_external_bootstrap=_str(env, "KAFKA_BOOTSTRAP"),
            kafka_connect_timeout_s=_float(env, "KAFKA_CONNECT_TIMEOUT", 10.0, 0.5, 600.0),
            kafka_security=security,
            redis_port=_int(env, "REDIS_PORT", 16379, 1, 65535),
            redis_external_url=_str(env, "REDIS_URL"),
            redis_password=_str(env, "REDIS_PASSWORD"),
            java=_str(env, "JAVA"),
            maven_repo=(_str(env, "MAVEN_REPO") or "https://repo1.maven.org/maven2").rstrip("/"),
            app_id=_str(env, "APP_ID", "secmlops-pds") or "secmlops-pds",
            worker_batch_size=_int(env, "WORKER_BATCH_SIZE", 32, 1, 4096),
            worker_batch_wait_s=_float(env, "WORKER_BATCH_WAIT", 0.05, 0.001, 60.0),
            worker_in_flight=_int(env, "WORKER_IN_FLIGHT", 2, 1, 8),
            worker_opencv_threads=_int(env, "WORKER_OPENCV_THREADS", 1, 0, 1024),
            worker_cpu_lanes=_int(env, "WORKER_CPU_LANES", 0, 0, 1024),
            worker_processes=_int(env, "WORKER_PROCESSES", 1, 1, 64),
            worker_fetch_bytes=_int(env, "WORKER_FETCH_BYTES", 8 * 1024**2, 2**20, 2**30),
            worker_stream_buffer=_int(env, "WORKER_STREAM_BUFFER", 128, 8, 2**20),
            worker_producer_linger_s=_float(env, "WORKER_PRODUCER_LINGER", 0.01, 0.0, 1.0),
            worker_drain_timeout_s=_float(env, "WORKER_DRAIN_TIMEOUT", 60.0, 0.0, 3600.0),
            worker_session_timeout_s=_float(env, "WORKER_SESSION_TIMEOUT", 60.0, 6.0, 1800.0),
            worker_commit_interval_s=_float(env, "WORKER_COMMIT_INTERVAL", 2.8, 0.1, 3600.0),
            worker_web_port=_int(env, "WORKER_WEB_PORT", 6066, 1, 65535),
            startup_timeout_s=_float(env, "STARTUP_TIMEOUT", 90.0, 1.0, 3600.0),
            frame_key=_str(env, "FRAME_KEY"),
            frame_key_id=_str(env, "FRAME_KEY_ID", "k1") or "k1",
            frame_keys_file=Path(keys_file)
            if (keys_file := _str(env, "FRAME_KEYS_FILE"))
            else None,
            claim_check_ttl_s=_int(env, "CLAIM_CHECK_TTL", 3600, 10, 30 * 86400),
            model_name=_str(env, "MODEL_NAME", "pedestrian") or "pedestrian",
            model_signing_key=_str(env, "MODEL_SIGNING_KEY"),
            model_trusted_keys=tuple(
                k.strip() for k in (_str(env, "MODEL_TRUSTED_KEYS") or "").split(",") if k.strip()
            ),
            device=_choice(env, "DEVICE", "auto", ("auto", "cpu", "cuda")),
            half=_choice(env, "HALF", "1", ("0", "1")) == "1",
            tune_malloc=_choice(env, "TUNE_MALLOC", "1", ("0", "1")) == "1",
            actor=_str(env, "ACTOR") or env.get("USER") or "unknown",
            monitors=_names(env, "MONITORS", "all"),
            monitor_checkpoint_s=_float(env, "MONITOR_CHECKPOINT", 10.0, 0.0, 86400.0),
            gate=_choice(env, "GATE", "1", ("0", "1")) == "1",
            gate_require=_names(env, "GATE_REQUIRE", "") or None,
            gate_deadline_s=_float(env, "GATE_DEADLINE", 5.0, 0.05, 3600.0),
            gate_signal_ttl_s=_float(env, "GATE_SIGNAL_TTL", 600.0, 1.0, 86400.0),
            gate_fail_open=_choice(env, "GATE_ON_MISSING", "closed", ("closed", "open")) == "open",
            gate_quarantine_on=_names(env, "GATE_QUARANTINE_ON", "integrity,adversarial"),
            quarantine_retention_s=_int(env, "QUARANTINE_RETENTION", 7 * 86400, 60, 365 * 86400),
            policy_file=Path(policy) if (policy := _str(env, "POLICY_FILE")) else None,
            policy_dry_run=_choice(env, "POLICY_DRY_RUN", "0", ("0", "1")) == "1",
        )

    @property
    def kafka_managed(self) -> bool:
        """True when the project runs its own broker (no external bootstrap set)."""
        return self.kafka_external_bootstrap is None

    @property
    def redis_managed(self) -> bool:
        """True when the project runs its own Redis (no external URL set)."""
        return self.redis_external_url is None

    @property
    def kafka_bootstrap(self) -> str:
        """The bootstrap servers every client connects to."""
        if self.kafka_external_bootstrap:
            return self.kafka_external_bootstrap
        return f"{self.kafka_host}:{self.kafka_port}"

    @property
    def redis_url(self) -> str:
        """The Redis URL every client connects to (password, if any, kept out of it)."""
        if self.redis_external_url:
            return self.redis_external_url
        return f"redis://127.0.0.1:{self.redis_port}/0"
