"""Fleet mode: `farm submit` queues a run, `farm worker`s next to the boards measure it, `farm runs
wait` follows it and gates it like `farm bench`, `farm queue ls/cancel` show and stop it.

Built on procrastinate (a task queue in PostgreSQL: row locks, LISTEN/NOTIFY, per-lock serial
execution, retries, worker heartbeats) on farm's PostgreSQL store; no other server. One module
a job:

- queue.py: the procrastinate app, its schema, the job per board (lock = board, queue = site).
- artifacts.py: files by content hash in the database (models, variants, datasets).
- manifest.py: a submitted run's matrix as data, rebuilt into Cells on a worker.
- submit.py: `farm submit` (validate as bench does, build variants once, queue).
- worker.py: `farm worker` (run a board's cells through BenchRunner; stalled-job recovery).
- state.py: farm's rows beside the queue (runs, board jobs, workers) and when a run ends.
- follow.py: `farm runs wait`; gate.py: its gate, with orchestrator.gating.
- control.py: `farm queue ls` and `farm queue cancel`.
"""
