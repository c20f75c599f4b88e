from tests.conftest import RunningGateway


async def test_healthz_and_readyz(running_gateway: RunningGateway) -> None:
    async with running_gateway.client() as client:
        health = await client.get("/healthz")
        ready = await client.get("/readyz")
    assert health.status_code == 200 and health.json() == {"status": "up"}
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"store": True, "broker": True, "relay": True}


async def test_readyz_says_not_ready_when_the_store_is_gone(running_gateway: RunningGateway) -> None:
    await running_gateway.runtime.store.stop()
    async with running_gateway.client() as client:
        ready = await client.get("/readyz")
    assert ready.status_code == 503 and ready.json()["checks"]["store"] is False
