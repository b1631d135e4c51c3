"""The red-team degraded model: validly signed, deterministic, and clearly worse."""

from __future__ import annotations

import pytest

from model_store.catalog import build_detector, hog_parts, make_artifact
from model_store.redteam import degrade
from model_store.signing import Signer, Verifier, new_key_pair
from producers.synthetic import pattern_frame


@pytest.fixture(scope="module")
def keys():
    pair = new_key_pair()
    return Signer(pair.private_hex), Verifier([pair.public_hex])


def test_a_blind_copy_is_signed_labelled_and_scores_every_window_lower(keys):
    signer, verifier = keys
    good = make_artifact(hog_parts(), signer)
    bad = degrade(good, verifier, signer, mode="blind", strength=2.0)
    bad.verify(verifier)  # it passes the signature check: that is the point of the drill
    assert bad.manifest["red_team"]["from_weights_sha256"] == good.manifest["weights_sha256"]
    assert bad.manifest["description"].startswith("RED-TEAM DRILL")
    before = good.verified_state(verifier)["svm"]
    after = bad.verified_state(verifier)["svm"]
    assert float(after[-1]) == pytest.approx(float(before[-1]) - 2.0)
    assert bool((after[:-1] == before[:-1]).all())


def test_noise_is_deterministic_per_seed(keys):
    signer, verifier = keys
    good = make_artifact(hog_parts(), signer)
    one = degrade(good, verifier, signer, mode="noise", strength=0.5, seed=1)
    same = degrade(good, verifier, signer, mode="noise", strength=0.5, seed=1)
    other = degrade(good, verifier, signer, mode="noise", strength=0.5, seed=2)
    assert one.manifest["weights_sha256"] == same.manifest["weights_sha256"]
    assert one.manifest["weights_sha256"] != other.manifest["weights_sha256"]
    detector = build_detector(one, verifier, version="x")
    assert len(detector.detect_batch([pattern_frame(0, width=160, height=128)])) == 1


def test_bad_drill_parameters_are_refused(keys):
    signer, verifier = keys
    good = make_artifact(hog_parts(), signer)
    with pytest.raises(ValueError, match="mode"):
        degrade(good, verifier, signer, mode="melt")
    with pytest.raises(ValueError, match="strength"):
        degrade(good, verifier, signer, strength=0)
