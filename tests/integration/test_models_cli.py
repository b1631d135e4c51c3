"""``secmlops models`` end to end on the real Redis: build, register, list, promote, verify."""

from __future__ import annotations

import json
import uuid

import pytest

from tests.integration.conftest import secmlops


@pytest.fixture
def env_one_model(stack, env):
    return {**env, "SECMLOPS_MODEL_NAME": f"cli-{uuid.uuid4().hex[:6]}", "SECMLOPS_ACTOR": "ci"}


def test_build_register_promote_verify_and_audit(env_one_model, tmp_path):
    env = env_one_model
    out = secmlops(env, "models", "build", "hog", "-o", str(tmp_path / "hog"))
    assert "signed by" in out.stdout
    assert (
        "version 1 registered" in secmlops(env, "models", "register", str(tmp_path / "hog")).stdout
    )
    assert (
        "version 2 registered" in secmlops(env, "models", "register", str(tmp_path / "hog")).stdout
    )
    assert "- -> 2" in secmlops(env, "models", "promote", "2", "--reason", "first").stdout
    listed = json.loads(secmlops(env, "models", "list", "--json").stdout)
    assert [(v["version"], v["active"]) for v in listed] == [("1", False), ("2", True)]
    assert "OK, signed by" in secmlops(env, "models", "verify", "1").stdout
    assert "OK" in secmlops(env, "models", "verify", str(tmp_path / "hog")).stdout
    shown = json.loads(secmlops(env, "models", "show", "2", "--json").stdout)
    assert shown["manifest"]["architecture"] == "hog-torch"
    assert shown["history"][0]["reason"] == "first"
    audit = secmlops(env, "models", "audit", "-n", "5").stdout
    assert "promote" in audit
    assert "ci" in audit


def test_a_tampered_folder_is_refused_with_a_clear_message(env_one_model, tmp_path):
    env = env_one_model
    secmlops(env, "models", "build", "hog", "-o", str(tmp_path / "hog"))
    weights = tmp_path / "hog" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-1] + b"\x00")
    result = secmlops(env, "models", "register", str(tmp_path / "hog"), check=False)
    assert result.returncode == 1
    assert "changed after signing" in result.stderr
    assert "Traceback" not in result.stderr


def test_rollback_without_history_says_why(env_one_model):
    result = secmlops(env_one_model, "models", "rollback", "--reason", "x", check=False)
    assert result.returncode == 1
    assert "no active version" in result.stderr
