"""Numbers and variant names as the report and `rnngan compare` print them."""
import math

import pytest

from rnngan.report.formatting import count, fmt, spread, variant_name, with_interval


@pytest.mark.parametrize("value, digits, text", [(-0.0, 1, "0.0"), (-0.04, 1, "0.0"), (-0.0004, 3, "0.000"),
                                                 (-0.06, 1, "-0.1"), (0.04, 1, "0.0"), (-3e-7, 6, "0.000000"),
                                                 (12.345, 2, "12.35"), (None, 2, "n/a"), (math.nan, 2, "n/a")])
def test_fmt_never_prints_a_signed_zero(value, digits, text):
    assert fmt(value, digits) == text


def test_an_interval_and_a_spread_that_round_to_zero_print_no_minus_sign():
    assert with_interval(-0.00002, -0.0003, 0.0008, 1, 1000) == "0.0 [-0.3, 0.8]"
    assert with_interval(-0.00001, -0.00002, 0.0008, 1, 1000) == "0.0 [0.0, 0.8]"
    assert spread({"mean": -0.0001, "std": 0.0001}, 3) == "0.000 ± 0.000"


def test_a_pair_variant_says_which_network_is_the_generator_and_which_the_discriminator():
    assert variant_name("lstm") == "lstm"
    assert variant_name("lstm+dcgan") == "lstm+dcgan (G lstm, D dcgan)"
    assert variant_name("dcgan+gru") == "dcgan+gru (G dcgan, D gru)"
    assert variant_name("transformer") == "transformer"      # another revision's name, shown as written


def test_parameter_counts_in_thousands():
    assert count(611696) == "612k" and count(1_234_567) == "1,235k" and count(None) == "n/a"
    assert count(4736) == "4,736" and count(500) == "500"        # small networks: no "0k"
