"""(4) Faust worker hosting a raw aiokafka AIOKafkaConsumer in an @app.task (own consumer group,
manual commit after each getmany batch). The Faust app itself has NO agents consuming the topic.
WITH_AGENT=1 additionally runs a naive Faust agent on a different (empty) topic so the Faust
consumer machinery is active too."""
import os, sys, uuid, asyncio, orjson
from collections import defaultdict
import faust
from aiokafka import AIOKafkaConsumer
from common import BOOTSTRAP, TOPIC, N, Meter

LABEL = os.environ.get("LABEL", "faust_task_raw_aiokafka")
app = faust.App(f"fsvc-{uuid.uuid4().hex[:8]}", broker=f"kafka://{BOOTSTRAP}", store="memory://",
                web_enabled=False, topic_partitions=4, topic_disable_leader=True,
                consumer_auto_offset_reset="earliest")
if os.environ.get("WITH_AGENT", "1") == "1":  # a Faust worker with zero subscribed topics crashes (aiokafka: "provide either topics or pattern")
    other = app.topic("events-idle", value_serializer="raw", partitions=4)
    @app.agent(other)
    async def idle_agent(stream):
        async for _ in stream:
            pass

@app.task
async def raw_consumer():
    c = AIOKafkaConsumer(TOPIC, bootstrap_servers=BOOTSTRAP, group_id=f"svc-raw-{uuid.uuid4().hex[:8]}",
                         auto_offset_reset="earliest", enable_auto_commit=False)
    await c.start()
    m = Meter(); agg = defaultdict(lambda: [0, 0, 0, 0, 0]); rounds = 0
    try:
        while not m.done:
            batches = await c.getmany(timeout_ms=500, max_records=10000)
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
                await c.commit()   # manual commit after each processed batch
        m.result(LABEL, {"getmany_rounds": rounds, "with_agent": os.environ.get("WITH_AGENT", "1") == "1"})
    finally:
        await c.stop()
        sys.stdout.flush(); os._exit(0)

if __name__ == "__main__":
    faust.Worker(app, loglevel="warning", quiet=True).execute_from_commandline()
