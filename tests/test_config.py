import pytest

from dafxlib.config import PROFILES, get_profile, parse_overrides, valid_keys
from dafxlib.errors import ConfigError


def test_three_profiles_exist():
    assert set(PROFILES) == {"smoke", "default", "paper"}
    assert get_profile("paper").spec.n_fft == 4096 and get_profile("paper").spec.hop == 1024
    assert get_profile("paper").effects.effect_set == "mda"
    assert get_profile("default").effects.effect_set == "portable"


def test_unknown_profile_lists_valid_ones():
    with pytest.raises(ConfigError, match="smoke, default, paper"):
        get_profile("fast")


def test_unknown_override_key_lists_valid_keys():
    with pytest.raises(ConfigError) as info:
        get_profile("smoke", {"vae.epochz": 3})
    assert "vae.epochs" in str(info.value)


def test_overrides_are_typed_and_applied():
    p = get_profile("smoke", parse_overrides(["vae.epochs=5", "vae.beta=0.5", "seed=7",
                                              "sweep.betas=[0.1, 1]"]))
    assert p.vae.epochs == 5 and p.vae.beta == 0.5 and p.seed == 7
    assert p.sweep.betas == (0.1, 1.0)
    with pytest.raises(ConfigError):
        get_profile("smoke", {"vae.epochs": "many"})
    with pytest.raises(ConfigError):
        parse_overrides(["vae.epochs"])


def test_profiles_are_frozen_and_hash_is_stable():
    a, b = get_profile("default"), get_profile("default")
    assert a.hash("data") == b.hash("data")
    assert a.hash("data") != get_profile("default", {"seed": 1}).hash("data")
    assert a.hash("data") != get_profile("default", {"data.n_speech": 3}).hash("data")
    with pytest.raises(Exception):
        a.seed = 3  # frozen


def test_valid_keys_cover_every_section():
    keys = valid_keys()
    for section in ("data", "effects", "spec", "vae", "sweep", "controller", "latent", "eval"):
        assert any(k.startswith(section + ".") for k in keys)
