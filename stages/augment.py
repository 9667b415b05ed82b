"""DVC stage `augment`: the augmentation policy materialised into one .npy, deterministic by seed."""
import sys
from pathlib import Path

from rnngan.stage import run_stage


def build(parser):
    parser.add_argument("--images", type=Path, required=True, help="prepared train.npy")
    parser.add_argument("--out", type=Path, required=True, help="augmented train.npy")


def work(params, args):
    import numpy as np

    from rnngan.data.augment import augment_images

    images = np.load(args.images, mmap_mode="r")
    augment_images(images, params.augment, params.augment.copies, params.seed, args.out)


if __name__ == "__main__":
    sys.exit(run_stage("augment", build, work))
