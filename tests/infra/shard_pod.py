"""What a ``ttscale-shard/gpu`` pod runs, for ``test_shard_worker_state.py``: the shard flow
``flows/shard.py:ttscale_shard`` on each shard prefix given, in this process.

    python shard_pod.py REQUEST.json SHARD_PREFIX [SHARD_PREFIX ...]
"""

from __future__ import annotations

import sys
from pathlib import Path

from flows.shard import ttscale_shard
from ttscale.schemas import BatchRequest

if __name__ == "__main__":
    request = BatchRequest.model_validate_json(Path(sys.argv[1]).read_text())
    for prefix in sys.argv[2:]:
        # No GPU-slot limit: the test has no Prefect server holding one.
        ttscale_shard(request, prefix, concurrency_limit=None)
