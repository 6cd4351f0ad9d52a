"""Faust consumer benchmark. MODE selects variant, SETTINGS (JSON) overrides app settings.

MODE:
  agent        naive `async for event in stream` (value_serializer='raw'), orjson decode + dict agg
  take         stream.take(TAKE, within=WITHIN)
  noack        stream.noack()
  events       async for event in stream.events()
  topicstream  app.topic(...).stream() consumed by an @app.task instead of an agent
  table        naive agent, update Table per event
PROFILE=pyinstrument -> write profile_<label>.txt/html for the measured window
"""
import os, sys, json, uuid, time, orjson, threading
from collections import defaultdict
import faust
if os.environ.get("PATCH"):
    import faust_patches; faust_patches.apply(os.environ["PATCH"])
from common import BOOTSTRAP, TOPIC, N, Meter

MODE = os.environ.get("MODE", "agent")
LABEL = os.environ.get("LABEL", f"faust_{MODE}")
SETTINGS = json.loads(os.environ.get("SETTINGS", "{}"))
TAKE = int(os.environ.get("TAKE", "1000"))
WITHIN = float(os.environ.get("WITHIN", "0.5"))
PROFILE = os.environ.get("PROFILE", "")

app = faust.App(
    f"fbench-{uuid.uuid4().hex[:8]}",
    broker=f"kafka://{BOOTSTRAP}",
    store="memory://",
    web_enabled=False,
    topic_partitions=4,
    topic_disable_leader=True,
    consumer_auto_offset_reset="earliest",
    **SETTINGS,
)
topic = app.topic(TOPIC, value_serializer="raw", key_serializer="raw")
meter = Meter()
agg = defaultdict(lambda: [0, 0, 0, 0, 0])
_prof = None

if MODE == "table":
    table = app.Table("agg", default=int, partitions=4)

def _first():
    global _prof
    if meter.t0 is None and PROFILE == "pyinstrument":
        from pyinstrument import Profiler
        _prof = Profiler(async_mode="disabled", interval=0.001)
        _prof.start()
    if meter.t0 is None and PROFILE == "cprofile":
        import cProfile
        _prof = cProfile.Profile(); _prof.enable()
    meter.start()

_stats = {"getmany_calls": 0, "getmany_records": 0, "getmany_nonempty": 0, "getmany_wait_s": 0.0, "idle_sleep_calls": 0}
if os.environ.get("INSTRUMENT"):
    from faust.transport.consumer import ThreadDelegateConsumer
    _orig_gm = ThreadDelegateConsumer._getmany
    async def _counting_getmany(self, active_partitions, timeout):
        t = time.perf_counter()
        r = await _orig_gm(self, active_partitions, timeout)
        if meter.t0 is not None and not meter.done:
            _stats["getmany_wait_s"] += time.perf_counter() - t
            n = sum(len(v) for v in r.values())
            _stats["getmany_calls"] += 1; _stats["getmany_records"] += n
            _stats["getmany_nonempty"] += bool(n)
        return r
    ThreadDelegateConsumer._getmany = _counting_getmany
    from faust.transport.consumer import Consumer as _FC
    _orig_gap = _FC._get_active_partitions
    def _counting_gap(self):
        r = _orig_gap(self)
        if not r and meter.t0 is not None and not meter.done:
            _stats["idle_sleep_calls"] += 1   # _wait_next_records will sleep (1 s unless patched)
        return r
    _FC._get_active_partitions = _counting_gap

_sel = {"calls": 0, "timeout0": 0, "timeout_pos": 0, "timeout_none": 0, "dur": 0.0, "dur_t0": 0.0, "nready": 0}
if os.environ.get("SELECT_STATS"):
    import selectors as _selectors
    _orig_select = _selectors.EpollSelector.select
    def _sel_select(self, timeout=None):
        if meter.t0 is None or meter.done or threading.current_thread() is not threading.main_thread():
            return _orig_select(self, timeout)
        t = time.perf_counter(); r = _orig_select(self, timeout); d = time.perf_counter() - t
        _sel["calls"] += 1; _sel["dur"] += d; _sel["nready"] += len(r)
        if timeout is None: _sel["timeout_none"] += 1
        elif timeout <= 0: _sel["timeout0"] += 1; _sel["dur_t0"] += d
        else: _sel["timeout_pos"] += 1
        return r
    _selectors.EpollSelector.select = _sel_select

def _thread_cpu():
    out = {}
    tck = os.sysconf("SC_CLK_TCK")
    for tid in os.listdir("/proc/self/task"):
        try:
            comm = open(f"/proc/self/task/{tid}/comm").read().strip()
            f = open(f"/proc/self/task/{tid}/stat").read().rsplit(")", 1)[1].split()
            out[f"{comm}-{tid}"] = round((int(f[11]) + int(f[12])) / tck, 2)
        except OSError:
            pass
    return out

def _finish():
    if _prof is not None and PROFILE == "cprofile":
        _prof.disable()
        import pstats
        _prof.dump_stats(f"/tmp/faust-study/profile_{LABEL}.pstats")
        with open(f"/tmp/faust-study/profile_{LABEL}.cprofile.txt", "w") as f:
            st = pstats.Stats(_prof, stream=f); st.sort_stats("tottime").print_stats(45)
            st.sort_stats("cumulative").print_stats(60)
    elif _prof is not None:
        _prof.stop()
        with open(f"/tmp/faust-study/profile_{LABEL}.txt", "w") as f:
            f.write(_prof.output_text(unicode=False, color=False, show_all=False))
        with open(f"/tmp/faust-study/profile_{LABEL}.html", "w") as f:
            f.write(_prof.output_html())
    extra = {"mode": MODE, "settings": SETTINGS}
    if os.environ.get("INSTRUMENT"):
        _stats["getmany_wait_s"] = round(_stats["getmany_wait_s"], 3); extra.update(_stats); extra["thread_cpu_s_total_incl_startup"] = _thread_cpu()
    if os.environ.get("SELECT_STATS"):
        extra["select"] = {k: (round(v, 3) if isinstance(v, float) else v) for k, v in _sel.items()}
    meter.result(LABEL, extra)
    sys.stdout.flush()
    os._exit(0)

def handle(value):
    ev = orjson.loads(value)
    a = agg[ev["influencerId"]]
    a[0] += 1; a[1] += ev["views"]; a[2] += ev["likes"]; a[3] += ev["comments"]; a[4] += ev["shares"]
    return ev

if MODE in ("agent", "noack", "events", "table"):
    @app.agent(topic)
    async def process(stream):
        if MODE == "noack":
            stream = stream.noack()
        if MODE == "events":
            async for event in stream.events():
                _first(); handle(event.value)
                if meter.add(): _finish()
        elif MODE == "table":
            async for value in stream:
                _first(); ev = handle(value)
                table[ev["influencerId"]] += ev["views"]
                if meter.add(): _finish()
        else:
            async for value in stream:
                _first(); handle(value)
                if meter.add(): _finish()
elif MODE == "take":
    @app.agent(topic)
    async def process(stream):
        async for values in stream.take(TAKE, within=WITHIN):
            _first()
            for v in values:
                handle(v)
            if meter.add(len(values)): _finish()
elif MODE == "topicstream":
    @app.task
    async def consume():
        async for value in topic.stream():
            _first(); handle(value)
            if meter.add(): _finish()
else:
    raise SystemExit(f"unknown MODE {MODE}")

if __name__ == "__main__":
    faust.Worker(app, loglevel=os.environ.get("LOGLEVEL", "warning"), quiet=True).execute_from_commandline()
