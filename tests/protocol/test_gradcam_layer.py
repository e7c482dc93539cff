"""The run's Grad-CAM layer: the case's by default, ``gradcam_layer`` / ``--layer`` to choose."""

from __future__ import annotations

import pytest

from absgrad.protocol import build_context, make_config
from absgrad.protocol.config import ConfigError


def _gradcam_layer(**overrides):
    config = make_config({"case": "synthetic"}, {"maps": ["gradcam"], **overrides})
    return config, build_context(config).specs["gradcam"].params["layer"]


def test_case_layer_by_default_and_config_layer_wins():
    base, layer = _gradcam_layer()
    assert layer == "block3"  # the synthetic case's
    chosen, layer = _gradcam_layer(gradcam_layer="block2")
    assert layer == "block2"
    assert chosen.config_hash() != base.config_hash()  # another layer, other results
    assert "gradcam_layer" not in base.hash_dict()  # runs without the option keep their hash


@pytest.mark.parametrize("bad", ["", 3])
def test_bad_layer_value_names_the_field(bad):
    with pytest.raises(ConfigError, match="gradcam_layer"):
        make_config({"case": "synthetic", "gradcam_layer": bad})


def test_unknown_layer_fails_before_any_work():
    from absgrad.methods.layers import LayerError

    config = make_config({"case": "synthetic"}, {"maps": ["gradcam"], "gradcam_layer": "block9"})
    with pytest.raises(LayerError, match=r"'block9' is not in the model.*block3"):
        build_context(config)
