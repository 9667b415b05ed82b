"""What every stage entry point shares: params loaded and validated first, user errors reported
as one clear line and a non-zero exit, logging set up."""
from __future__ import annotations

import argparse
import sys
from typing import Callable

from rnngan.config import Params, ParamsError, load_params
from rnngan.io import ImageArrayError, log, setup_logging

EXIT_USER_ERROR = 2


def user_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that mean 'your input is wrong', not 'rnngan has a bug'."""
    from rnngan.attributes import AttributesError
    from rnngan.data.celeba_format import FormatError
    from rnngan.data.download import DownloadError
    from rnngan.data.preprocess import PreprocessError
    from rnngan.data.sources import SourceError
    from rnngan.comparison import ComparisonError
    from rnngan.export import ExportCheckError
    from rnngan.metrics.inception import InceptionWeightsError
    from rnngan.sampling import GeneratorFileError
    from rnngan.training import TrainingError

    return (ParamsError, FormatError, PreprocessError, DownloadError, SourceError, GeneratorFileError,
            TrainingError, ExportCheckError, ComparisonError, AttributesError, InceptionWeightsError, ImageArrayError, FileNotFoundError)


def run_stage(name: str, build: Callable[[argparse.ArgumentParser], None],
              work: Callable[[Params, argparse.Namespace], object], argv=None, numeric: bool = False) -> int:
    """Parse the stage's arguments, load params.yaml, run `work`; report user errors plainly.
    A `numeric` stage (its numbers depend on the CPU kernels) honours train.portable."""
    parser = argparse.ArgumentParser(prog=f"python -m stages.{name}", description=f"DVC stage '{name}'.")
    parser.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    build(parser)
    args = parser.parse_args(argv)
    setup_logging()
    try:
        params = load_params(args.params)
        if numeric:
            from rnngan.portable import enter_portable

            enter_portable(params)
        work(params, args)
    except user_errors() as exc:
        print(f"rnngan {name}: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print(f"rnngan {name}: interrupted; no partial output was kept", file=sys.stderr)
        return 130
    log.info("stage %s done", name)
    return 0
