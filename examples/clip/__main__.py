"""``python -m examples.clip``: govern a transformers CLIP model with the seed's config file."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["main"]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse the command line (``--help`` lists every option)."""
    parser = argparse.ArgumentParser(
        prog="python -m examples.clip",
        description="Register a sharded CLIP model with examples/clip/config.yaml as it is, "
        "fine-tune text_projection, diff, monitor drift, promote and roll back.",
    )
    parser.add_argument("--database", default=None,
                        help="registry URL (default: a SQLite file in the work directory)")
    parser.add_argument("--config", type=Path, default=None,
                        help="config file to register (default: examples/clip/config.yaml)")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="where weights and pipeline go (kept); default: a temporary one")
    parser.add_argument("--keep", action="store_true",
                        help="keep the temporary work directory and print its path")
    parser.add_argument("--export", type=Path, default=None, metavar="DIR",
                        help="only write the files the CLI registers: DIR/v1, DIR/v2 (sharded), "
                        "DIR/pipeline/{tokenizer,image_processor}, DIR/reference-v{1,2}.npz")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the story (or, with ``--export``, write its files).

    Returns:
        0 when every check of the story held, 1 when one did not, 2 when a step was refused.
    """
    args = parse_args(argv)
    import torch

    torch.set_num_threads(min(2, torch.get_num_threads()))
    if args.export is not None:
        from examples.clip.artifacts import build_artifacts

        args.export.mkdir(parents=True, exist_ok=True)
        build_artifacts(args.export)
        return 0
    from examples.clip.story import run_clip_story, story_ok
    from registry.errors import RegistryError

    try:
        result = run_clip_story(args.database, config_path=args.config, workdir=args.workdir,
                                keep=args.keep)
    except (RegistryError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    ok = story_ok(result)
    where = f"; files kept in {result.workdir}" if result.workdir else ""
    print(f"{'ok: every check held' if ok else 'FAILED: a check did not hold'}{where}")
    print(f"took {result.seconds:.1f} s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
