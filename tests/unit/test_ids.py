"""Request and trace ids: random version-4 UUIDs and X-Ray trace headers, from a shared pool of the
kernel's random bytes that never hands the same bytes out twice, whichever thread asks."""

from __future__ import annotations

import re
import threading
import uuid

from lamina.service.invoke import new_request_id, new_trace_id


def test_request_ids_are_version_4_uuids_and_never_repeat_across_threads():
    found: list[list[str]] = [[] for _ in range(4)]

    def draw(out: list[str]) -> None:
        out.extend(new_request_id() for _ in range(5000))

    threads = [threading.Thread(target=draw, args=(out,)) for out in found]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ids = [i for out in found for i in out]
    assert len(set(ids)) == len(ids) == 20000
    for text in ids[:200]:
        parsed = uuid.UUID(text)
        assert str(parsed) == text and parsed.version == 4 and parsed.variant == uuid.RFC_4122


def test_trace_ids_have_the_x_ray_shape():
    traces = {new_trace_id() for _ in range(1000)}
    assert len(traces) == 1000
    assert all(re.fullmatch(r"Root=1-[0-9a-f]{8}-[0-9a-f]{24};Parent=[0-9a-f]{16};Sampled=0", t) for t in traces)
