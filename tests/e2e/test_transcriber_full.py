"""Notes that find the transcriber full wait for it: none is turned away, none charged twice.

The transcriber here takes one stream and queues none, so of four notes sent
at once, three are refused (RESOURCE_EXHAUSTED, OVERLOADED, with a retry
delay). The gateway waits as the transcriber asks, keeping each note's hold and
status message, where it used to tell the user to send the note again.
"""

from __future__ import annotations

import asyncio
import pathlib
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from billing.v1 import billing_pb2, billing_pb2_grpc
from tests.e2e.conftest import running_mesh
from tests.helpers import reference_text, wer
from voxmesh.audiofiles import encode
from voxmesh.channels import dial
from voxmesh_dev.mesh import Mesh

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]

# Users of their own: the session shares one database with test_gateway_flows (7100xx).
USERS = [760001, 760002, 760003, 760004]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def mesh(
    postgres_dsn: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Mesh]:
    env = {"TRANSCRIBER_MAX_ACTIVE_STREAMS": "1", "TRANSCRIBER_MAX_QUEUED_STREAMS": "0"}
    async with running_mesh(postgres_dsn, redis_url, tmp_path_factory.mktemp("full"), env) as m:
        yield m


async def test_notes_that_find_the_transcriber_full_wait_for_it(
    mesh: Mesh, shared_audio: pathlib.Path
) -> None:
    emu = mesh.emulator
    file_id = emu.add_file(encode(shared_audio / "jfk.flac"), mime_type="audio/ogg")
    reference = reference_text(shared_audio, "jfk.flac")
    for user in USERS:
        emu.push_update(emu.make_message_update(chat_id=user, user_id=user, voice=(file_id, 11)))

    def all_answered() -> bool:
        for user in USERS:
            msgs = emu.messages(user)
            if not msgs or not msgs[0].edits or msgs[0].edits[-1].startswith(("⏳", "🎙")):
                return False
            if msgs[0].edits[-1].endswith("…"):
                return False
        return True

    await emu.wait_for(all_answered, 300)
    waited = 0
    for user in USERS:
        edits = emu.messages(user)[0].edits
        assert wer(reference, edits[-1]) <= 0.10, (user, edits)
        assert not any("overloaded" in e for e in edits), (user, edits)
        waited += any(e.startswith("⏳ Lots of recordings") for e in edits)
    # One stream at a time: at least one of four notes sent at once found it full.
    assert waited >= 1
    async with dial(mesh.target("billing")) as ch:
        billing = billing_pb2_grpc.BillingServiceStub(ch)
        for user in USERS:
            for _ in range(100):  # the text goes out before the capture commits
                page = await billing.ListTransactions(
                    billing_pb2.ListTransactionsRequest(user_id=user, page_size=20)
                )
                kinds = [tx.kind for tx in page.transactions]
                if billing_pb2.TRANSACTION_KIND_CAPTURE in kinds:
                    break
                await asyncio.sleep(0.1)
            assert kinds.count(billing_pb2.TRANSACTION_KIND_CAPTURE) == 1, (user, kinds)
            balance = await billing.GetBalance(billing_pb2.GetBalanceRequest(user_id=user))
            assert balance.held_credits == 0
