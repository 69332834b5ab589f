"""The shard poller: ordered batches per shard, checkpoint after success, retries, bisect, record age."""

from __future__ import annotations

from lamina.clock import Clock
from lamina.esm.contracts import (
    Invoke, LoadCheckpoint, RecordFilter, SaveCheckpoint, SendFailure, StreamSource,
)
from collections.abc import Callable


class StreamPoller:
    def __init__(self, *, uuid: str, source: StreamSource, invoke: Invoke, send_failure: SendFailure,
                 load_checkpoint: LoadCheckpoint, save_checkpoint: SaveCheckpoint,
                 record_filter: RecordFilter | None, batch_size: int, batching_window_s: float,
                 starting_position: str, starting_timestamp: float | None, parallelization_factor: int,
                 bisect_on_error: bool, maximum_retry_attempts: int, maximum_record_age_s: int,
                 report_batch_item_failures: bool, function_arn: str, clock: Clock,
                 on_result: Callable[[str], None] | None = None) -> None:
        raise NotImplementedError  # filled in by the next commit

    async def run(self) -> None:
        raise NotImplementedError

    async def aclose(self) -> None:
        raise NotImplementedError
