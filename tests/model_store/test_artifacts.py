"""Artifacts are trusted only when signed by a trusted key and unchanged since."""

from __future__ import annotations

import json

import pytest

from model_store.artifacts import MANIFEST, SIGNATURE, WEIGHTS, Artifact
from model_store.catalog import build_detector, hog_parts, make_artifact
from model_store.errors import ModelStoreError, UntrustedModelError
from model_store.signing import Signer, Verifier, new_key_pair

PAIR = new_key_pair()
SIGNER = Signer(PAIR.private_hex)
VERIFIER = Verifier([PAIR.public_hex])


@pytest.fixture(scope="module")
def hog():
    return make_artifact(hog_parts(), SIGNER)


def test_a_signed_artifact_verifies_and_records_its_weights_hash(hog):
    hog.verify(VERIFIER)
    assert hog.signer == SIGNER.key_id
    assert hog.manifest["architecture"] == "hog-torch"
    assert len(hog.manifest["weights_sha256"]) == 64
    assert hog.manifest["weights_bytes"] == len(hog.weights)


def test_changed_weights_are_refused(hog):
    tampered = Artifact(hog.manifest, hog.weights[:-1] + b"\x00", hog.signature, hog.signer)
    with pytest.raises(UntrustedModelError, match="weights were changed after signing"):
        tampered.verify(VERIFIER)


def test_a_changed_manifest_is_refused(hog):
    manifest = {**hog.manifest, "metrics": {"map": 0.99}}
    with pytest.raises(UntrustedModelError, match="changed after signing"):
        Artifact(manifest, hog.weights, hog.signature, hog.signer).verify(VERIFIER)


def test_an_unsigned_artifact_is_refused(hog):
    with pytest.raises(UntrustedModelError, match="not signed"):
        Artifact(hog.manifest, hog.weights, b"", "").verify(VERIFIER)


def test_a_signature_by_an_untrusted_key_is_refused(hog):
    other = make_artifact(hog_parts(), Signer(new_key_pair().private_hex))
    with pytest.raises(UntrustedModelError, match="not trusted"):
        other.verify(VERIFIER)


def test_tensors_only_come_out_after_verification(hog):
    tampered = Artifact(hog.manifest, hog.weights[:-1] + b"\x01", hog.signature, hog.signer)
    with pytest.raises(UntrustedModelError):
        tampered.verified_state(VERIFIER)
    assert hog.verified_state(VERIFIER)["svm"].shape == (3781,)


def test_save_and_load_round_trip_and_a_tampered_file_is_caught(hog, tmp_path):
    folder = hog.save(tmp_path / "hog")
    assert {p.name for p in folder.iterdir()} == {WEIGHTS, MANIFEST, SIGNATURE}
    Artifact.load(folder).verify(VERIFIER)
    manifest = json.loads((folder / MANIFEST).read_text())
    manifest["architecture"] = "something-else"
    (folder / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(UntrustedModelError):
        Artifact.load(folder).verify(VERIFIER)


def test_a_folder_without_a_signature_loads_but_never_verifies(hog, tmp_path):
    folder = hog.save(tmp_path / "hog")
    (folder / SIGNATURE).unlink()
    with pytest.raises(UntrustedModelError, match="not signed"):
        Artifact.load(folder).verify(VERIFIER)


def test_a_folder_that_is_not_an_artifact_is_a_clear_error(tmp_path):
    with pytest.raises(ModelStoreError, match="not a model artifact"):
        Artifact.load(tmp_path)


def test_the_detector_built_from_the_artifact_is_opencvs(hog):
    import numpy as np

    from detectors.models.hog_opencv import OpenCVHog

    detector = build_detector(hog, VERIFIER, version="7")
    assert (detector.name, detector.version) == ("hog-torch", "7")
    image = np.random.default_rng(3).integers(0, 255, (256, 192, 3), dtype=np.uint8)
    ours, reference = detector.detect_batch([image])[0], OpenCVHog().detect_batch([image])[0]
    assert ours.shape == reference.shape
    assert np.allclose(ours[:, :4], reference[:, :4])


@pytest.mark.parametrize("bad", ["", "zz", "00" * 31], ids=["empty", "not-hex", "too-short"])
def test_bad_keys_are_clear_errors(bad):
    with pytest.raises(ModelStoreError):
        Signer(bad)
    with pytest.raises(ModelStoreError):
        Verifier([bad or "x"])


@pytest.mark.parametrize(("asked", "built"), [(None, 2), (256, 256)])
def test_an_ssdlite_artifact_stacks_the_batch_its_server_asks_for(asked, built):
    # A GPU worker asks for its whole batch (SECMLOPS_WORKER_BATCH_SIZE) in one network
    # call; without a request SSDLite keeps its own chunks (2 frames on a CPU).
    from detectors.models.ssdlite import SSDLite, _toy_manifest

    manifest = {**_toy_manifest(), "version": "toy", "source": "untrained, for this test"}
    state = SSDLite(manifest).state_dict()
    artifact = make_artifact((manifest, state), SIGNER)
    detector = build_detector(artifact, VERIFIER, version="toy", max_batch=asked)
    assert detector.max_batch == built
