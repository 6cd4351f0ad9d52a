"""Create topic (4 partitions) and produce N small JSON events keyed by influencerId."""
import asyncio, time, uuid, orjson, sys
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from common import BOOTSTRAP, TOPIC, N

async def main():
    admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    await admin.start()
    try:
        existing = await admin.list_topics()
        if TOPIC not in existing:
            await admin.create_topics([NewTopic(TOPIC, num_partitions=4, replication_factor=1)])
            print("created", TOPIC)
        else:
            print("exists", TOPIC)
    finally:
        await admin.close()
    p = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, linger_ms=20, max_batch_size=256 * 1024, acks=1)
    await p.start()
    t0 = time.perf_counter()
    try:
        batch = []
        for i in range(N):
            inf = f"inf_{i % 500}"
            ev = {"eventId": str(uuid.uuid4()), "timestamp": int(time.time() * 1000), "influencerId": inf,
                  "platform": "tiktok", "campaignId": f"cmp_{i % 50}", "views": 100, "likes": 5,
                  "comments": 1, "shares": 0}
            batch.append(await p.send(TOPIC, orjson.dumps(ev), key=inf.encode()))
            if len(batch) >= 5000:
                await asyncio.gather(*batch); batch = []
        await asyncio.gather(*batch)
    finally:
        await p.stop()
    dt = time.perf_counter() - t0
    print(f"produced {N} in {dt:.2f}s ({N/dt:.0f}/s)")

asyncio.run(main())
