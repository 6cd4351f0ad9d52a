import os, time, json, resource
BOOTSTRAP = os.environ.get("BOOTSTRAP", "127.0.0.1:19092")
TOPIC = os.environ.get("TOPIC", "events")
N = int(os.environ.get("N", "200000"))

class Meter:
    """Measures wall + process CPU (all threads) from first event to last."""
    def __init__(self, n=N):
        self.n = n; self.count = 0; self.t0 = None; self.c0 = None; self.done = False
    def start(self):
        if self.t0 is None:
            self.t0 = time.perf_counter(); self.c0 = time.process_time()
    def add(self, k=1):
        if self.t0 is None: self.start()
        self.count += k
        if self.count >= self.n and not self.done:
            self.done = True
            self.wall = time.perf_counter() - self.t0
            self.cpu = time.process_time() - self.c0
            return True
        return False
    def result(self, label, extra=None):
        r = {"variant": label, "events": self.count, "wall_s": round(self.wall, 3),
             "events_per_s": round(self.count / self.wall), "cpu_pct": round(100 * self.cpu / self.wall, 1)}
        if extra: r.update(extra)
        line = json.dumps(r)
        print("RESULT " + line, flush=True)
        with open(os.environ.get("RESULTS", "/tmp/faust-study/results.jsonl"), "a") as f:
            f.write(line + "\n")
        return r
