"""Connection options: security settings reach every Kafka and Redis client unchanged."""

from __future__ import annotations

from streams.clients import kafka_config, redis_client
from streams.settings import Settings


def test_plaintext_by_default():
    config = kafka_config(Settings.from_env({}))
    assert config == {
        "bootstrap_servers": ["127.0.0.1:19092"],
        "security_protocol": "PLAINTEXT",
        "bootstrap_timeout_ms": 10_000,
    }


def test_tls_and_sasl_pass_through():
    config = kafka_config(
        Settings.from_env(
            {
                "SECMLOPS_KAFKA_BOOTSTRAP": "a:9093,b:9093",
                "SECMLOPS_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
                "SECMLOPS_KAFKA_SASL_MECHANISM": "SCRAM-SHA-256",
                "SECMLOPS_KAFKA_SASL_USERNAME": "pds",
                "SECMLOPS_KAFKA_SASL_PASSWORD": "pw",
                "SECMLOPS_KAFKA_SSL_CAFILE": "/etc/ca.pem",
            }
        )
    )
    assert config["bootstrap_servers"] == ["a:9093", "b:9093"]
    assert config["security_protocol"] == "SASL_SSL"
    assert config["sasl_mechanism"] == "SCRAM-SHA-256"
    assert config["sasl_plain_username"] == "pds"
    assert config["sasl_plain_password"] == "pw"
    assert config["ssl_cafile"] == "/etc/ca.pem"


def test_redis_auth_comes_from_the_environment():
    client = redis_client(
        Settings.from_env(
            {"SECMLOPS_REDIS_URL": "redis://r.example:6380/3", "SECMLOPS_REDIS_PASSWORD": "pw"}
        )
    )
    kwargs = client.connection_pool.connection_kwargs
    assert (kwargs["host"], kwargs["port"], kwargs["db"]) == ("r.example", 6380, 3)
    assert kwargs["password"] == "pw"
