"""DVC stage `augment`: the real side of the augmentation policy materialised into one .npy,
deterministic by seed (augment.real=cached: `augment.copies` draws per image). With
augment.real=step (the default) training redraws the real side every step through the same
function, and this stage passes the images through unchanged."""
import sys
from pathlib import Path

from rnngan.stage import run_stage


def build(parser):
    parser.add_argument("--images", type=Path, required=True, help="prepared train.npy")
    parser.add_argument("--out", type=Path, required=True, help="augmented train.npy")


def work(params, args):
    from rnngan.data.augment import Policy, augment_images
    from rnngan.io import load_images

    images = load_images(args.images)
    policy = Policy.of(params.augment) if params.augment.real == "cached" else Policy(p=0.0)
    augment_images(images, policy, params.augment.copies, params.seed, args.out)


if __name__ == "__main__":
    sys.exit(run_stage("augment", build, work))
