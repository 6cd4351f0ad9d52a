"""(a) raw aiokafka consumer: getmany + orjson + dict aggregation."""
import asyncio, sys, uuid, orjson, os
from collections import defaultdict
from aiokafka import AIOKafkaConsumer
from common import BOOTSTRAP, TOPIC, N, Meter

async def main():
    c = AIOKafkaConsumer(TOPIC, bootstrap_servers=BOOTSTRAP, group_id=f"raw-{uuid.uuid4().hex[:8]}",
                         auto_offset_reset="earliest", enable_auto_commit=False)
    await c.start()
    m = Meter(); agg = defaultdict(lambda: [0, 0, 0, 0, 0]); rounds = 0
    try:
        while not m.done:
            batches = await c.getmany(timeout_ms=500, max_records=int(os.environ.get("MAX_RECORDS", "10000")))
            n = 0
            for tp, msgs in batches.items():
                for msg in msgs:
                    ev = orjson.loads(msg.value)
                    a = agg[ev["influencerId"]]
                    a[0] += 1; a[1] += ev["views"]; a[2] += ev["likes"]; a[3] += ev["comments"]; a[4] += ev["shares"]
                    n += 1
            if n:
                rounds += 1
                m.add(n)
                await c.commit()
        m.result("raw_aiokafka_getmany", {"getmany_rounds": rounds, "keys": len(agg)})
    finally:
        await c.stop()
asyncio.run(main())
