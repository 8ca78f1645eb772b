import pytest

import aioloop


@pytest.fixture(params=[False, True], ids=["asyncio-task", "native-task"])
def native(request):
    return request.param


@pytest.fixture
def loop(native):
    lp = aioloop.new_event_loop(native_tasks=native)
    yield lp
    if not lp.is_closed():
        lp.close()
