"""Fault injection: `python -m chaos [--duration S] [--seed N] [--shape embedded|split]`
(`make chaos`) runs a mixed workload while killing the platform's processes on a seeded schedule,
then checks the platform against an independent reference and prints a report with counts. It
exits 1 on any mismatch.

Workload (chaos.workload): engagement events through `POST /events` (with redeliveries of
earlier events and duplicates inside a request), CSV files through `POST /etl/uploads` (some
uploaded twice), campaign commands (create with an Idempotency-Key, status walks and budget
changes with If-Match, an occasional stale If-Match that must be 412) whose webhooks go to a
flaky receiver, briefs through `POST /generate-brief` against a fake OpenAI-compatible model, and
metrics reads. A request whose outcome is unknown (no answer, 5xx) is sent again with the same
eventIds, file, Idempotency-Key or, after reading the campaign's version, the same If-Match, so
the reference (chaos.reference) stays exact.

What is killed, always with SIGKILL by PID (chaos.processes):
- embedded shape: `fk up` is the broker (its child, which dies with it and forgets every
  message: it keeps them in memory), the worker and the API in one process, so killing it kills
  all three; it is started again at once on the same ports and data directory, and about one
  restart in three is itself killed 0.5-5 s into its start (migrations, id reload, group join).
- split shape: a standalone Tansu broker that stays up, and `fk up` pointed at it
  (`FK_KAFKA_BOOTSTRAP`: the worker and the API, no broker of its own), killed and restarted as
  above. Unconsumed events and uncommitted offsets then survive on the broker, as with a Kafka
  cluster, so this exercises re-reading after a crash rather than acknowledgement after storage.
  The standalone broker itself is not killed: its storage is memory, so killing it loses what it
  acknowledged by construction (a Kafka cluster replicates instead). A separate `fk worker` and
  `fk api` cannot be run here: both need the one chDB data path (one process per path) and no
  ClickHouse server is available, so the worker and the API share a process in both shapes.
- the receiver (chaos.receiver), a process of its own: it verifies every delivery with the
  official Standard Webhooks library, answers 500 or holds the request past the platform's
  timeout at random, and records each accepted webhook-id; it is down 1-6 s per kill.

Checks, once killing stops and everything is up: campaign metrics (1 h, 24 h, total) equal the
reference; every campaign's status, version and budget; every version of every campaign was
delivered to the receiver (by webhook-id), with no bad signature; the newest audit-log attempt of
every webhook-id is `delivered` (nothing left retrying or dead); no 5xx and no unanswered request
outside the windows in which a component was down (kill to ready again, plus 1 s).
"""
