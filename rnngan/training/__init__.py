"""GAN training for one variant and seed: Adam, the loss registry with R1/R2, an EMA generator,
exact resume, DDP through torchrun.

One module per concern, in the order a step meets them:

- `config`: `TrainConfig` (the run, built from the params sections) and `TrainingError`;
- `data`: the seeded batch order (a pure function of seed and step) and the loader;
- `losses`: the loss registry (`train.loss`) and the R1/R2 and mode-seeking terms;
- `updates`: `Run`, the networks and optimisers, and one step: update D, update G, EMA;
- `ema`: the EMA's half-life and the EMA generator's own BatchNorm statistics;
- `distributed`: the process group and every collective, on the group's device;
- `checkpoint`: the checkpoint format, when one may be resumed, the published generator;
- `loop`: `train`, the loop: steps, logs, grids, checkpoints, and the published run folder.
"""
from rnngan.training.checkpoint import load_checkpoint, save_generator
from rnngan.training.config import TrainConfig, TrainingError
from rnngan.training.loop import train

__all__ = ["TrainConfig", "TrainingError", "load_checkpoint", "save_generator", "train"]
