"""Entry point of each torchrun rank: `python -m torch.distributed.run ... -m model.launch RUN_DIR`.

The request (spec, token store, tokenizer) was pickled into RUN_DIR/launch.pkl by
`model.distributed.launch`; every rank trains its share and rank 0 writes the outputs.
"""

from __future__ import annotations

import pickle
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    from .pipeline import ProgressFile
    from .tokens import TokenStore, load_tokenizer
    from .train import train

    run_dir = Path((argv or sys.argv[1:])[0])
    request = pickle.loads((run_dir / "launch.pkl").read_bytes())
    train(run_dir, request["spec"], TokenStore(request["tokens_dir"]), load_tokenizer(request["tokenizer_dir"]),
          progress=ProgressFile(request["progress_path"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
