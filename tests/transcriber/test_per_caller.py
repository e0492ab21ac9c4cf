"""One caller cannot take every stream slot: a per-caller cap beside the global one."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import pytest

from tests.transcriber.conftest import Audio, ServerFactory, encode
from transcriber.v1 import transcriber_pb2 as pb
from voxmesh.errors import error_details


@pytest.mark.slow
async def test_second_stream_of_one_caller_is_refused(
    start_server: ServerFactory, jfk_audio: Audio
) -> None:
    srv = await start_server(max_streams_per_caller=1, max_active_streams=4)
    data = encode(jfk_audio, container="ogg", codec="libopus")
    release = asyncio.Event()

    async def held() -> AsyncIterator[pb.TranscribeRequest]:
        yield pb.TranscribeRequest(config=pb.TranscriptionConfig())
        await release.wait()  # keeps the first stream open
        yield pb.TranscribeRequest(audio=data)

    async def quick() -> AsyncIterator[pb.TranscribeRequest]:
        yield pb.TranscribeRequest(config=pb.TranscriptionConfig())
        yield pb.TranscribeRequest(audio=data)

    first = srv.stub.Transcribe(held(), timeout=60)
    await asyncio.sleep(0.5)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        [e async for e in srv.stub.Transcribe(quick(), timeout=30)]
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    details = error_details(info.value)
    assert details.reason == "OVERLOADED" and details.retry_after is not None
    release.set()
    events = [e async for e in first]
    assert events[-1].HasField("done")
    # The slot is free again once the first stream ended.
    again = [e async for e in srv.stub.Transcribe(quick(), timeout=30)]
    assert again[-1].HasField("done")
