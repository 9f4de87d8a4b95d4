import math

import pytest
import torch

from fitbench import representations as R
from fitbench.representations.encodings import EncodedMLP, GaussianFourierFeatures, PositionalEncoding
from fitbench.representations.mlp import MLP

SIX = ["fnet", "fourier_features", "positional", "rbf", "relu_mlp", "siren"]


def test_registry_lists_the_six():
    assert set(SIX) <= set(R.list_representations())
    assert R.list_representations("f*") == ["finer", "fnet", "fourier_features"]


@pytest.mark.parametrize("name", SIX)
@pytest.mark.parametrize("channels", [1, 3])
def test_coordinates_to_values(name, channels):
    torch.manual_seed(0)
    model = R.build(name, out_features=channels)
    out = model(torch.rand(50, 2))
    assert out.shape == (50, channels) and torch.isfinite(out).all()
    assert R.count_parameters(model) > 0
    assert model.representation == name and model.config.lr > 0


def test_unknown_name_and_setting_are_clear_errors():
    with pytest.raises(R.UnknownRepresentationError, match="choose from: .*siren"):
        R.build("sirne")
    with pytest.raises(ValueError, match="siren has no setting omega; its settings are: .*omega_0"):
        R.build("siren", omega=3)


def test_fnet_parameter_count_matches_the_thesis():
    # width 8, depth 6 on RGB: 2*8*4 + 5 * 2*8*256 + 2*3*256 = 22,080
    assert R.count_parameters(R.build("fnet", out_features=3, width=8, depth=6)) == 22080


def test_siren_initialisation_bounds():
    model = R.build("siren", width=64, depth=3)
    first, second = model.body[0], model.body[1]
    assert first.weight.abs().max() <= 1 / 2 and first.weight.abs().max() > 0.4  # U(-1/fan_in, 1/fan_in), fan_in 2
    bound = math.sqrt(6 / 64) / 30
    assert second.weight.abs().max() <= bound and second.weight.abs().max() > 0.9 * bound


def test_fourier_features_b_is_fixed_and_seeded():
    a = R.build("fourier_features", seed=3)
    b = R.build("fourier_features", seed=3)
    c = R.build("fourier_features", seed=4)
    assert torch.equal(a.encoding.frequencies, b.encoding.frequencies)
    assert not torch.equal(a.encoding.frequencies, c.encoding.frequencies)
    assert "encoding.frequencies" not in dict(a.named_parameters())  # B is never trained
    assert a.encoding.frequencies.std().item() == pytest.approx(10.0, rel=0.15)


def test_positional_frequencies_follow_ffn():
    encoding = PositionalEncoding(2, num_frequencies=4, max_log2=6.0)
    expected = 2.0 ** torch.linspace(0, 6, 4) - 1
    assert torch.allclose(encoding.frequencies[:4, 0], expected) and torch.all(encoding.frequencies[:4, 1] == 0)
    assert torch.allclose(encoding.frequencies[4:, 1], expected) and torch.all(encoding.frequencies[4:, 0] == 0)
    v = torch.tensor([[0.25, 0.5]])
    features = encoding(v)
    phase = 2 * math.pi * v @ encoding.frequencies.T
    assert torch.allclose(features, torch.cat([phase.sin(), phase.cos()], -1) / math.sqrt(8))


def test_encodings_compose_with_the_shared_mlp():
    for name in ["relu_mlp", "positional", "fourier_features"]:
        model = R.build(name)
        assert isinstance(model, EncodedMLP) and isinstance(model.mlp, MLP)
        assert model.mlp[0].in_features == model.encoding.get_out_dim()
    assert isinstance(R.build("fourier_features").encoding, GaussianFourierFeatures)


def test_a_new_file_registers_everywhere(tmp_path):
    @R.register("_test_constant", R.RepresentationConfig)
    def constant(config, out_features):
        """A constant colour."""
        return torch.nn.Sequential(torch.nn.Linear(2, out_features))

    try:
        assert "_test_constant" in R.list_representations()
        assert R.build("_test_constant", out_features=2)(torch.rand(3, 2)).shape == (3, 2)
    finally:
        R.registry._REGISTRY.pop("_test_constant")


FREQUENCIES = {"siren": ("omega_0_nyquist", "omega_0", 30.0), "finer": ("omega_0_nyquist", "omega_0", 30.0),
               "gauss": ("scale_nyquist", "scale", 30.0), "wire": ("scale_nyquist", "scale", 30.0),
               "fourier_features": ("sigma_nyquist", "sigma", 10.0)}


@pytest.mark.parametrize("name", sorted(FREQUENCIES))
def test_a_frequency_relative_to_the_training_grid_scales_with_it(name):
    relative, absolute, at_256 = FREQUENCIES[name]
    sized = R.sized_overrides(name, "standard")  # the source's value relative to its 256^2 training grid
    built = {side: R.build(name, 3, training_grid=R.TrainingGrid(side, side), **sized).config for side in (64, 256)}
    assert getattr(built[256], absolute) == pytest.approx(at_256)
    assert getattr(built[64], absolute) == pytest.approx(at_256 / 4)
    assert relative not in R.model_settings(built[64])  # a stream stores the absolute value only


def test_positional_highest_frequency_follows_the_grid():
    sized = R.sized_overrides("positional", "standard")
    for side, s in ((64, 4.0), (256, 6.0)):  # FFN's s = 6 on its 256^2 training grid
        assert R.build("positional", 3, training_grid=R.TrainingGrid(side, side), **sized).config.max_log2 == s
    with pytest.raises(ValueError, match=r"positional.max_log2 = -1.0, derived for a 4 x 4 training grid"):
        R.make_config("positional", training_grid=R.TrainingGrid(4, 4), max_frequency_nyquist=0.25)


def test_a_later_absolute_setting_switches_off_the_relative_one():
    merged = R.merge_overrides("siren", {"omega_0_nyquist": 0.2, "width": 16}, {"omega_0": 20.0})
    assert merged == {"omega_0_nyquist": None, "width": 16, "omega_0": 20.0}
    assert R.build("siren", 3, training_grid=R.TrainingGrid(64, 64), **merged).config.omega_0 == 20.0
    relative = R.merge_overrides("siren", {"omega_0": 20.0}, {"omega_0_nyquist": 0.5})  # relative wins when set
    assert R.build("siren", 3, training_grid=R.TrainingGrid(64, 64), **relative).config.omega_0 == 16.0


def test_a_stream_of_a_model_built_for_a_grid_decodes_without_the_grid():
    from fitbench.compression.bitstream import decode_stream, encode_model
    from fitbench.compression.quantize import parse_quantizer

    torch.manual_seed(0)
    model = R.build("hash_grid", 3, training_grid=R.TrainingGrid(40, 40), levels=4, base_resolution=4,
                    log2_table_size=8, width=8, finest_sides=1.0)
    assert model.config.per_level_scale == pytest.approx(10 ** (1 / 3))  # 4 -> 40 cells in 4 levels
    decoded = decode_stream(encode_model(model, 40, 40, parse_quantizer("fp32")))
    assert decoded.model.config.per_level_scale == model.config.per_level_scale and not decoded.notes
    coords = torch.rand(50, 2)
    torch.testing.assert_close(decoded.model(coords), model(coords))
