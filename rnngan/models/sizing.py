"""Parameter counts, and sizes that give every variant the same parameter budget.

The reference budget is the LSTM variant built from the base config (its hidden and nf): fixed,
so that choosing another headline cell (model.cell) does not resize every variant. Each other
variant gets the size that brings each network's count closest to the LSTM's: the cell size of
the generator (hidden) and of the discriminator (d_hidden) for a recurrent cell, the base widths
(nf, d_nf) for DCGAN. The generator and discriminator are matched separately.

Counts are closed-form (microseconds, where building a network takes milliseconds even on the
meta device); tests check them against count_parameters of the built networks.
"""
from __future__ import annotations

import dataclasses

from rnngan.models.layers import ModulatedBatchNorm, NetConfig, levels, split_variant

REFERENCE = "lstm"
_GATES = {"rnn": 1, "gru": 3, "lstm": 4}   # weight blocks of the nn.*Cell (W_ih, W_hh, b_ih, b_hh)
_LIMIT = 1 << 16                           # no size beyond this is searched


def _linear(n_in: int, n_out: int, bias: bool = True) -> int:
    return n_in * n_out + (n_out if bias else 0)


def _conv4(n_in: int, n_out: int, bias: bool = False) -> int:
    return 16 * n_in * n_out + (n_out if bias else 0)


def _cell(cell: str, n_in: int, hidden: int) -> int:
    if cell == "sru":   # weight k*h x in (k = 3, or 4 with a highway projection), v and bias 2 x h
        return (3 if n_in == hidden else 4) * hidden * n_in + 4 * hidden
    return _GATES[cell] * (hidden * n_in + hidden * hidden + 2 * hidden)


def _norm(cfg: NetConfig, c: int) -> int:
    """G's BatchNorm of c channels: its affine, or the self-modulation MLP that replaces it."""
    if cfg.modulation:
        return _linear(cfg.z_dim, ModulatedBatchNorm.HIDDEN) + _linear(ModulatedBatchNorm.HIDDEN, 2 * c)
    return 2 * c


def _recurrent_generator(cfg: NetConfig) -> int:
    h, z = cfg.hidden, cfg.z_dim
    n_in = z * (2 if cfg.feedback else 1)
    chans = [cfg.nf * 2 ** i for i in reversed(range(levels(cfg.image_size, 4)))]
    decoder = (_linear(h + (z if cfg.z_decoder else 0), chans[0] * 16, bias=False)
               + sum(_conv4(a, b) for a, b in zip(chans, chans[1:])) + _conv4(chans[-1], 3)
               + cfg.timesteps * sum(_norm(cfg, c) for c in chans))    # per-step BatchNorm
    encoder = 0
    if cfg.feedback:
        c = max(cfg.nf // 2, 8)
        encoder = _conv4(3, c, True) + _conv4(c, 2 * c, True) + _linear(2 * c * 16, z) + 2 * z
    return _linear(z, h) + _cell(cfg.g_kind, n_in, h) + decoder + encoder


def _recurrent_discriminator(cfg: NetConfig) -> int:
    h, downs = cfg.disc_hidden, levels(cfg.image_size, 8)
    chans = [cfg.disc_nf * 2 ** i for i in range(downs)]
    bn = cfg.d_norm == "batch"
    trunk = sum(_conv4(a, b, bias=i == 0) + (2 * b if i and bn else 0)
                for i, (a, b) in enumerate(zip([3, *chans], chans)))
    rows_in = ((chans[-1] if chans else 3) + (cfg.mbstd_group > 0)) * 8  # + minibatch-stddev channel
    return trunk + _linear(rows_in, h) + _cell(cfg.d_kind, h, h) + _linear(h, 1)


def _dcgan_generator(cfg: NetConfig) -> int:
    chans = [cfg.nf * 2 ** i for i in reversed(range(levels(cfg.image_size, 4)))]
    return (_conv4(cfg.z_dim, chans[0]) + _norm(cfg, chans[0])
            + sum(_conv4(a, b) + _norm(cfg, b) for a, b in zip(chans, chans[1:])) + _conv4(chans[-1], 3))


def _dcgan_discriminator(cfg: NetConfig) -> int:
    chans = [cfg.disc_nf * 2 ** i for i in range(levels(cfg.image_size, 4))]
    bn = 2 if cfg.d_norm == "batch" else 0
    return (_conv4(3, chans[0]) + sum(_conv4(a, b) + bn * b for a, b in zip(chans, chans[1:]))
            + _conv4(chans[-1] + (cfg.mbstd_group > 0), 1))


def parameter_counts(cfg: NetConfig) -> tuple[int, int]:
    """(generator, discriminator) parameter counts of the networks build_generator(cfg) and
    build_discriminator(cfg) make, without building them."""
    g, d = split_variant(cfg.cell)
    return ((_dcgan_generator if g == "dcgan" else _recurrent_generator)(cfg),
            (_dcgan_discriminator if d == "dcgan" else _recurrent_discriminator)(cfg))


def _closest(count, target: int, rising_after: int = 0) -> tuple[int, int]:
    """The size s >= 1 whose count(s) is closest to target, and that count.

    count rises with s beyond `rising_after` (SRU's count dips once, at s == its input size,
    where it drops the highway projection), so the search stops at the first s past both that
    and the target.
    """
    best = (1, count(1))
    for s in range(2, _LIMIT + 1):
        n = count(s)
        if abs(n - target) < abs(best[1] - target):
            best = (s, n)
        if n > target and s > rising_after:
            break
    return best


def _counting(cfg: NetConfig, field: str, network: int):
    """size -> the parameter count of one network (0: generator, 1: discriminator) of cfg with
    `field` set to that size."""
    return lambda size: parameter_counts(dataclasses.replace(cfg, **{field: size}))[network]


def match_params(base: NetConfig, variants: list[str], tolerance: float = 0.05) -> dict[str, NetConfig]:
    """A NetConfig per variant whose generator and discriminator each have about as many
    parameters as the LSTM variant built from `base` (within `tolerance`, relative).

    Recurrent cells get their own generator cell size (hidden) and discriminator cell size
    (d_hidden); DCGAN gets its widths (nf, d_nf). The LSTM is `base` itself. A variant that
    cannot come within tolerance is a ValueError naming the variant, the network and the closest
    count reached.
    """
    reference = dataclasses.replace(base, cell=REFERENCE)
    target_g, target_d = parameter_counts(reference)
    matched = {}
    for variant in variants:
        g, d = split_variant(variant)
        if variant == REFERENCE:
            matched[variant] = reference
            continue
        cfg = dataclasses.replace(reference, cell=variant)
        if g == "dcgan" and d != "dcgan":
            # note: DCGAN's G is sized by nf, which a recurrent D's trunk would follow: pin the trunk
            cfg = dataclasses.replace(cfg, d_nf=reference.disc_nf)
        # each network sized by its own kind: DCGAN's by its widths, a recurrent one by its cell
        # (the generator cell's count dips at its input size, z and the canvas encoding with feedback)
        g_field, rising_after = ("nf", 0) if g == "dcgan" else ("hidden", cfg.z_dim * (2 if cfg.feedback else 1))
        d_field = "d_nf" if d == "dcgan" else "d_hidden"
        size_g, n_g = _closest(_counting(cfg, g_field, 0), target_g, rising_after)
        size_d, n_d = _closest(_counting(cfg, d_field, 1), target_d)
        cfg = dataclasses.replace(cfg, **{g_field: size_g, d_field: size_d})
        for network, n, target, field, size in (("generator", n_g, target_g, g_field, size_g),
                                                 ("discriminator", n_d, target_d, d_field, size_d)):
            if abs(n - target) > tolerance * target:
                raise ValueError(
                    f"{variant}: cannot match the {network}'s parameter count to the {REFERENCE}'s "
                    f"{target:,} within {tolerance:.1%}; the closest is {n:,} "
                    f"({n / target - 1:+.1%}, {field}={size})")
        matched[variant] = cfg
    return matched
