import dataclasses

import pytest

from dafxlib.config import PROFILES, get_profile, parse_overrides, valid_keys
from dafxlib.errors import ConfigError


def test_three_profiles_exist():
    assert set(PROFILES) == {"smoke", "default", "paper"}
    assert get_profile("paper").spec.n_fft == 4096 and get_profile("paper").spec.hop == 1024
    assert get_profile("paper").effects.effect_set == "mda"
    assert get_profile("smoke").effects.effect_set == "portable"


@pytest.mark.parametrize("found", [True, False])
def test_default_profile_takes_the_mda_set_where_the_plugins_are_found(found, tmp_path, monkeypatch):
    """``auto`` resolves when the profile is made: mda with the plugins, portable without; the
    resolved profile names the concrete set (so cache keys and numbers say which made them)."""
    bundle = tmp_path / "lv2" / "mda.lv2"
    if found:
        bundle.mkdir(parents=True)
        (bundle / "manifest.ttl").write_text("")
    monkeypatch.setenv("DAFX_MDA_LV2", str(bundle))
    assert PROFILES["default"].effects.effect_set == "auto"
    prof = get_profile("default")
    assert prof.effects.effect_set == ("mda" if found else "portable")
    assert get_profile("default", {"effects.effect_set": "auto"}) == prof
    # an explicit choice is kept whatever is installed, and changes the run's identity
    assert get_profile("default", {"effects.effect_set": "portable"}).effects.effect_set == "portable"
    assert get_profile("default", {"effects.effect_set": "mda"}).effects.effect_set == "mda"
    other = "portable" if found else "mda"
    assert get_profile("default", {"effects.effect_set": other}).hash() != prof.hash()


def test_unknown_profile_lists_valid_ones():
    with pytest.raises(ConfigError, match="smoke, default, paper"):
        get_profile("fast")


def test_unknown_override_key_lists_valid_keys():
    with pytest.raises(ConfigError) as info:
        get_profile("smoke", {"vae.epochz": 3})
    assert "vae.epochs" in str(info.value)


def test_overrides_are_typed_and_applied():
    p = get_profile("smoke", parse_overrides(["vae.epochs=5", "vae.beta=0.5", "seed=7", "sweep.betas=[0.1, 1]"]))
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
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.seed = 3  # frozen


def test_valid_keys_cover_every_section():
    keys = valid_keys()
    for section in ("data", "effects", "spec", "vae", "sweep", "controller", "plane", "eval"):
        assert any(k.startswith(section + ".") for k in keys)


def test_overrides_are_typed_from_the_annotations():
    # a field whose default is None takes its annotation's type, not any string
    with pytest.raises(ConfigError, match=r"controller.spsa_n_train='abc': expected int \| None"):
        get_profile("default", {"controller.spsa_n_train": "abc"})
    assert get_profile("default", {"controller.spsa_n_train": "null"}).controller.spsa_n_train is None
    assert get_profile("default", {"controller.spsa_n_train": "64"}).controller.spsa_n_train == 64
    assert get_profile("default", {"plane.effects": '["delay"]'}).plane.effects == ("delay",)
    assert get_profile("default", {"vae.umap_epochs": 5}).vae.umap_epochs == 5
    # a string where a string is allowed stays a string (no JSON: "123" is a name, not a number)
    assert get_profile("default", {"data.dataset_root": "123"}).data.dataset_root == "123"
    with pytest.raises(ConfigError, match="expected an integer"):
        get_profile("default", {"vae.epochs": 2.5})
    with pytest.raises(ConfigError, match="expected true or false"):
        get_profile("default", {"eval.baselines_only": 1})


def test_constraints_are_declared_beside_the_fields():
    from dataclasses import fields

    from dafxlib.config import DataConfig, validate

    rules = {f.name: dict(f.metadata) for f in fields(DataConfig)}
    assert rules["sample_rate"] == {"min": 8000, "max": 768_000}
    assert rules["split"] == {"min": 0.0, "sum": 1.0}
    for name in PROFILES:  # the shipped profiles satisfy their own constraints
        assert validate(PROFILES[name]) is PROFILES[name]
    with pytest.raises(ConfigError, match="train .* and test .* must be > 0"):
        get_profile("default", {"data.split": [0.9, 0.1, 0.0]})
    with pytest.raises(ConfigError, match="plane.n_settings=3: must be >= 4"):
        get_profile("default", {"plane.n_settings": 3})
    with pytest.raises(ConfigError, match="sweep.modes='both': must be one of"):
        get_profile("default", {"sweep.modes": '["joint", "both"]'})
    with pytest.raises(ConfigError, match="needs at least one value"):
        get_profile("default", {"controller.signals": "[]"})


def test_the_old_latent_section_name_points_to_plane():
    with pytest.raises(ConfigError, match=r"now called 'plane' \(use plane.n_settings\)"):
        get_profile("default", {"latent.n_settings": 100})
    assert get_profile("default", {"plane.n_settings": 100}).plane.n_settings == 100
