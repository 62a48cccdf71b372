"""Batched, parallel rendering through one effect, with bad items reported instead of fatal.

:class:`RenderPool` keeps its workers alive between calls (SPSA renders every training
step). Effects that release the GIL (pedalboard, numba, numpy) run in threads, one effect
clone per worker thread. Effects with ``needs_process_isolation`` (LV2, VST3) run in worker
processes that each build their own instance, so a plugin that crashes (segfault, abort)
fails only the item it was rendering: the dead worker is replaced and the rest of the batch
goes on. Items whose output is non-finite or silent, or whose render raised, are listed in
:attr:`RenderResult.failed` and left as rows of zeros. Results are bit-identical to calling
``effect.process`` serially on each row. Code that renders in many small calls shares
pools through :func:`shared_pool` (``render_batch(..., reuse=True)``): starting a process
pool costs about a second, and 10 calls of 4 one-second clips through an mda plugin took
22.4 s with a fresh pool per call against 1.1 s with one shared pool
(``benchmarks/bench_pool_reuse.py``, 2 cores under load).

Where the time goes (measured with ``benchmarks/bench_effects.py``): the batch is checked
once, so items skip :meth:`Effect.process`'s per-call checks; the output check is one
GIL-free pass (:func:`~dafxlib.effects.dsp.sum_squares`); threads take items from a shared
counter (no idle worker while the other still has a queue); worker processes report
through a status array in shared memory and send a message only for a failed item and at
the end of their share, so the parent wakes twice per batch, not once per item.
"""

from __future__ import annotations

import atexit
import collections
import concurrent.futures
import hashlib
import itertools
import math
import multiprocessing as mp
import multiprocessing.connection as mpc
import os
import pickle
import signal
import threading
import time
import weakref
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import shared_memory

import numpy as np

from .audio import as_float_audio, check_sample_rate
from .effects.base import Effect
from .effects.dsp import copy_sum_squares, sum_squares
from .errors import EffectError, RenderPoolError

__all__ = ["RenderPool", "RenderResult", "render_batch", "shared_pool", "close_shared_pools"]


@dataclass
class RenderResult:
    """Rendered batch: ``audio`` (B, N) float32 (failed rows are zeros), ``failed`` list of
    (index, reason), ``ok`` boolean mask (B,)."""

    audio: np.ndarray
    failed: list[tuple[int, str]] = field(default_factory=list)
    ok: np.ndarray | None = None

    def __post_init__(self):
        if self.ok is None:
            self.ok = np.ones(self.audio.shape[0], dtype=bool)
            for i, _ in self.failed:
                self.ok[i] = False

    @property
    def n_failed(self) -> int:
        return len(self.failed)

    def raise_if_failed(self) -> RenderResult:
        """Raise :class:`EffectError` listing the failures, if there are any."""
        if self.failed:
            shown = "; ".join(f"item {i}: {r}" for i, r in self.failed[:5])
            more = f" (+{len(self.failed) - 5} more)" if len(self.failed) > 5 else ""
            raise EffectError(f"{len(self.failed)} of {self.audio.shape[0]} renders failed: {shown}{more}")
        return self


def _check_output(y: np.ndarray, x: np.ndarray, silence_db: float) -> str | None:
    """Reason an output is unusable (non-finite, or silent from an audible input), or None."""
    n = max(y.shape[0], 1)
    ss = sum_squares(y)
    if not math.isfinite(ss):
        return f"non-finite output ({int((~np.isfinite(y)).sum())} NaN/inf samples)"
    rms = math.sqrt(ss / n)
    db = 20.0 * math.log10(rms) if rms > 0 else -math.inf
    if db < silence_db:
        rms_in = math.sqrt(sum_squares(x) / max(x.shape[0], 1))
        if rms_in > 0 and 20.0 * math.log10(rms_in) >= silence_db:
            return f"silent output (rms {db:.1f} dBFS from a {20.0 * math.log10(rms_in):.1f} dBFS input)"
    return None


def _raise_non_finite(name: str, a: np.ndarray) -> None:
    rows = np.nonzero(~np.isfinite(a).all(axis=1))[0]
    raise EffectError(f"{name}: input clips {rows[:10].tolist()} contain NaN or inf")


def _exception_reason(e: BaseException) -> str:
    return f"exception: {type(e).__name__}: {e}"


# ---- process workers -----------------------------------------------------------------
# Audio travels through shared-memory blocks (batch in, batch out) and each item's state
# through a third one (QUEUED -> STARTED -> OK or FAILED), written by the worker. The pipe
# carries the job (indices, parameters), a message per failed item (its reason) and one
# "done" per job. A worker that dies or hangs leaves exactly one item STARTED: the culprit.
QUEUED, STARTED, OK, FAILED = 0, 1, 2, 3
#: seconds a fresh worker process may take to start (on top of item_timeout) before it counts as hung
STARTUP_GRACE = 60.0


class _Shared:
    """An array in shared memory, grown on demand by the parent."""

    def __init__(self, dtype=np.float32):
        self.dtype = np.dtype(dtype)
        self.shm: shared_memory.SharedMemory | None = None

    def view(self, *shape: int) -> np.ndarray:
        need = max(math.prod(shape) * self.dtype.itemsize, 1)
        if self.shm is None or self.shm.size < need:
            self.release()
            self.shm = shared_memory.SharedMemory(create=True, size=need)
        return np.ndarray(shape, dtype=self.dtype, buffer=self.shm.buf)

    def release(self) -> None:
        if self.shm is not None:
            try:
                self.shm.close()
                self.shm.unlink()
            except (FileNotFoundError, BufferError):
                pass
            self.shm = None


def _attach(cache: dict, name: str) -> shared_memory.SharedMemory:
    shm = cache.get(name)
    if shm is None:
        for old in cache.values():
            old.close()
        cache.clear()
        # spawned workers share the parent's resource tracker (a set of names), so attaching
        # re-registers the same name and the parent's unlink() clears it
        shm = shared_memory.SharedMemory(name=name)
        cache[name] = shm
    return shm


def _process_worker_main(conn, effect_bytes: bytes, sample_rate: int, tail_seconds: float, silence_db: float) -> None:
    """Worker process: build the effect once, then render jobs read from shared memory."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C belongs to the parent
    effect = pickle.loads(effect_bytes)
    sum_squares(np.zeros(8, np.float32))  # load the output check's compiled code now, not inside a timed item
    caches: tuple[dict, dict, dict] = ({}, {}, {})
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):
            return
        if job is None:
            return
        (in_name, out_name, st_name), rows, n_in, n_out, indices, params = job
        a = np.ndarray((rows, n_in), np.float32, buffer=_attach(caches[0], in_name).buf)
        out = np.ndarray((rows, n_out), np.float32, buffer=_attach(caches[1], out_name).buf)
        status = np.ndarray((rows,), np.int8, buffer=_attach(caches[2], st_name).buf)
        for i, values in zip(indices, params):
            status[i] = STARTED
            try:
                y = effect._process_checked(a[i], sample_rate, values, tail_seconds)
                if y.shape[0] != n_out:
                    raise EffectError(f"{effect.name} returned {y.shape[0]} samples, expected {n_out}")
                reason = _check_output(y, a[i], silence_db)
                if reason is None:
                    out[i] = y
            except Exception as e:  # reported per item; the worker lives on
                reason = _exception_reason(e)
            if reason is None:
                status[i] = OK
            else:
                conn.send((i, reason))  # before the status: a dead worker never loses a reason
                status[i] = FAILED
        conn.send(None)  # job done
        del a, out, status


class _ProcessWorker:
    def __init__(self, ctx, effect_bytes: bytes, sample_rate: int, tail_seconds: float, silence_db: float):
        self.conn, child = ctx.Pipe(duplex=True)
        self.proc = ctx.Process(
            target=_process_worker_main,
            args=(child, effect_bytes, sample_rate, tail_seconds, silence_db),
            daemon=True,
            name="dafx-render-worker",
        )
        self.proc.start()
        child.close()
        #: jobs sent and not yet finished, oldest (the one being rendered) first
        self.jobs: collections.deque[list[int]] = collections.deque()
        self.started_seen = 0
        self.last_progress = time.monotonic()
        #: set once the worker has finished a job (a later death is not a start-up failure)
        self.rendered = False

    def deadline(self, item_timeout: float) -> float:
        """When the item in progress times out; a worker that has not started an item yet is
        still starting (spawn re-imports, builds the effect) and gets STARTUP_GRACE more."""
        starting = not self.rendered and self.started_seen == 0
        return self.last_progress + item_timeout + (STARTUP_GRACE if starting else 0.0)

    def next_check(self, item_timeout: float, now: float) -> float:
        """When the parent should next look at this worker's item states: its deadline, and
        while it is starting, every second past ``item_timeout`` (to see its first item start)."""
        deadline = self.deadline(item_timeout)
        if self.rendered or self.started_seen:
            return deadline
        return min(deadline, max(self.last_progress + item_timeout, now + min(1.0, item_timeout)))

    @property
    def busy(self) -> bool:
        return bool(self.jobs)

    def send(self, job_head: tuple, indices: list[int], params: list[list[float]]) -> None:
        if not self.jobs:
            self.started_seen = 0
            self.last_progress = time.monotonic()
        self.jobs.append(list(indices))
        self.conn.send(job_head + (self.jobs[-1], [params[i] for i in indices]))

    def death_reason(self) -> str:
        self.proc.join(timeout=1.0)
        code = self.proc.exitcode
        if code is None:
            return "worker process stopped answering"
        if code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = f"signal {-code}"
            return f"worker process crashed ({name})"
        return f"worker process exited with code {code}"

    def kill(self) -> None:
        try:
            if self.proc.is_alive():
                self.proc.kill()
            self.proc.join(timeout=5.0)
        finally:
            self.conn.close()

    def stop(self) -> None:
        try:
            if self.proc.is_alive():
                self.conn.send(None)
                self.proc.join(timeout=2.0)
        except (OSError, ValueError):
            pass
        self.kill()


def _shutdown(executor, workers, shared) -> None:
    if executor is not None:
        executor.shutdown(wait=False, cancel_futures=True)
    for w in workers:
        try:
            w.stop()
        except Exception:
            pass
    for sh in shared:
        sh.release()


class _ProcessBatch:
    """The state of one process-mode :meth:`RenderPool.render` call."""

    def __init__(self, a, values, head, status, shared_in, shared_out, out, failed):
        self.a, self.values, self.head, self.status = a, values, head, status
        self.shared_in, self.shared_out, self.out, self.failed = shared_in, shared_out, out, failed
        self.todo: list[int] = list(range(a.shape[0]))
        self.copied = 0
        self.bad_input = False

    def copy_in(self, upto: int) -> bool:
        """Copy input rows up to ``upto`` into shared memory, checking them (False: NaN/inf)."""
        if upto > self.copied:
            lo = self.copied
            ss = copy_sum_squares(self.shared_in[lo:upto].reshape(-1), self.a[lo:upto].reshape(-1))
            if not math.isfinite(ss):
                self.bad_input = True
                return False
            self.copied = upto
        return True

    def finish(self, rows: list[int]) -> None:
        """Copy finished rows out; a row neither OK nor explained still counts as failed."""
        if rows == list(range(rows[0], rows[-1] + 1)):
            self.out[rows[0] : rows[-1] + 1] = self.shared_out[rows[0] : rows[-1] + 1]
        else:
            self.out[rows] = self.shared_out[rows]
        for i in rows:
            if self.status[i] != OK and i not in self.failed:
                self.failed[i] = "render failed (its worker ended before reporting why)"


def _shm_name(shared: _Shared) -> str:
    """The name of a live shared-memory block (its buffer exists once the pool started)."""
    if shared.shm is None:
        raise RenderPoolError("render pool shared memory is gone (the pool was closed)")
    return str(shared.shm.name)


class RenderPool:
    """Render batches through ``effect`` at ``sample_rate`` with ``workers`` parallel workers.

    ``mode``: ``"auto"`` (processes when ``effect.needs_process_isolation``, else threads),
    ``"thread"``, ``"process"`` or ``"serial"`` (in the caller's thread). ``silence_db``:
    an output quieter than this (RMS, dBFS) from a louder input is a failure.
    ``item_timeout`` (process mode): seconds an item may take before its worker is killed.
    ``mp_context``: multiprocessing start method for process mode (``spawn`` by default;
    scripts that create a pool in process mode need an ``if __name__ == "__main__"`` guard).
    Use as a context manager, or call :meth:`close`.
    """

    def __init__(
        self,
        effect: Effect,
        sample_rate: int,
        workers: int = 2,
        *,
        mode: str = "auto",
        silence_db: float = -90.0,
        tail_seconds: float = 0.0,
        item_timeout: float | None = 300.0,
        mp_context: str = "spawn",
    ):
        if not isinstance(effect, Effect):
            raise EffectError(f"RenderPool needs an Effect, got {type(effect).__name__}")
        sample_rate = check_sample_rate(sample_rate, f"RenderPool({effect.name})", error=EffectError)
        if int(workers) < 1:
            raise EffectError(f"workers must be >= 1, got {workers}")
        if mode == "auto":
            mode = "process" if effect.needs_process_isolation else ("thread" if workers > 1 else "serial")
        if mode not in ("thread", "process", "serial"):
            raise EffectError(f"mode must be 'auto', 'thread', 'process' or 'serial', got {mode!r}")
        self.effect = effect
        self.sample_rate = int(sample_rate)
        self.workers = int(workers)
        self.mode = mode
        self.silence_db = float(silence_db)
        self.tail_seconds = float(tail_seconds)
        self.item_timeout = item_timeout
        self._lock = threading.Lock()
        self._closed = False
        self._executor: ThreadPoolExecutor | None = None
        self._procs: list[_ProcessWorker] = []
        self._shared = [_Shared(), _Shared(), _Shared(np.int8)]  # process mode: in, out, item states
        self.restarts = 0
        #: workers that died in a row before rendering any item (reset by any progress)
        self._startup_deaths = 0
        if mode in ("thread", "serial"):
            n = self.workers if mode == "thread" else 1
            self._clones = [effect.clone() for _ in range(n)]
            if mode == "thread" and n > 1:
                self._executor = ThreadPoolExecutor(max_workers=n, thread_name_prefix="dafx-render")
        else:
            self._ctx = mp.get_context(mp_context)
            try:
                self._effect_bytes = pickle.dumps(effect)
            except Exception as e:
                raise EffectError(
                    f"{effect.name}: process workers need a picklable effect ({e}); "
                    "use mode='thread' or make the effect picklable"
                ) from e
            self._procs = [self._new_proc() for _ in range(self.workers)]
        self._finalizer = weakref.finalize(self, _shutdown, self._executor, self._procs, self._shared)

    # ---- lifecycle ----------------------------------------------------------------------
    def __enter__(self) -> RenderPool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Stop the workers (idempotent)."""
        self._closed = True
        self._finalizer()

    def _new_proc(self) -> _ProcessWorker:
        return _ProcessWorker(self._ctx, self._effect_bytes, self.sample_rate, self.tail_seconds, self.silence_db)

    # ---- rendering ------------------------------------------------------------------------
    def _prepare(self, audios, params01, check_audio: bool = True) -> tuple[np.ndarray, np.ndarray]:
        name = self.effect.name
        if isinstance(audios, (list, tuple)):
            lengths = {np.asarray(a).reshape(-1).shape[0] for a in audios}
            if len(lengths) > 1:
                raise EffectError(f"{name}: all clips of a batch must have the same length, got {sorted(lengths)}")
            audios = (
                np.stack([as_float_audio(a, name, error=EffectError).reshape(-1) for a in audios])
                if audios
                else np.zeros((0, 0), np.float32)
            )
        a = np.ascontiguousarray(as_float_audio(audios, name, error=EffectError), dtype=np.float32)
        if a.ndim != 2 or a.shape[1] == 0:
            raise EffectError(f"{name}: audios must have shape (batch, samples), got {a.shape}")
        if check_audio and not math.isfinite(sum_squares(a.reshape(-1))):
            _raise_non_finite(name, a)
        p = np.asarray(params01, dtype=np.float64)
        if p.ndim == 1:
            p = np.broadcast_to(p, (a.shape[0], p.shape[0]))
        if p.ndim != 2 or p.shape[0] != a.shape[0]:
            raise EffectError(
                f"{name}: params01 must have shape (batch={a.shape[0]}, {self.effect.n_params}), "
                f"got {np.shape(params01)}"
            )
        if p.shape[1] != self.effect.n_params:
            raise EffectError(
                f"{name}: expected {self.effect.n_params} parameters {self.effect.param_names}, got {p.shape[1]}"
            )
        if not np.isfinite(p).all():
            raise EffectError(f"{name}: parameters must be finite")
        if (p < 0).any() or (p > 1).any():
            rows = np.nonzero(((p < 0) | (p > 1)).any(axis=1))[0]
            raise EffectError(f"{name}: normalised parameters must lie in [0, 1]; rows {rows[:10].tolist()} do not")
        return a, np.ascontiguousarray(p)

    def render(self, audios, params01) -> RenderResult:
        """Render each row of ``audios`` (B, N) with the matching row of ``params01`` (B, P).

        Bad arguments (shapes, NaN input, parameters outside [0, 1]) raise
        :class:`EffectError`; failures of single renders are reported in the result.
        """
        if self._closed:
            raise EffectError(f"this RenderPool is closed{getattr(self, '_closed_why', '')}; create a new one")
        # process mode checks the audio while copying it into shared memory (one read, not two)
        a, p = self._prepare(audios, params01, check_audio=self.mode != "process")
        b = a.shape[0]
        n_out = a.shape[1] + (int(round(self.tail_seconds * self.sample_rate)) if self.tail_seconds > 0 else 0)
        failed: dict[int, str] = {}
        if b == 0:
            return RenderResult(np.zeros((0, n_out), np.float32), [], np.zeros(0, bool))
        values = p.tolist()
        with self._lock:
            if self.mode == "process":
                out = self._render_processes(a, values, n_out, failed)
            else:
                out = np.zeros((b, n_out), dtype=np.float32)
                self._render_threads(a, values, out, failed)
        ok = np.ones(b, dtype=bool)
        for i in failed:
            ok[i] = False
            out[i] = 0.0
        return RenderResult(out, sorted(failed.items()), ok)

    # ---- threads (and serial) -------------------------------------------------------------
    def _render_one(self, fx: Effect, i: int, a, values, out, failed) -> None:
        try:
            y = fx._process_checked(a[i], self.sample_rate, values[i], self.tail_seconds)
        except Exception as e:
            failed[i] = _exception_reason(e)
            return
        reason = _check_output(y, a[i], self.silence_db)
        if reason is None:
            out[i] = y
        else:
            failed[i] = reason

    def _render_threads(self, a, values, out, failed) -> None:
        b = a.shape[0]
        n = min(len(self._clones), b)
        if self._executor is None or n == 1:
            for i in range(b):
                self._render_one(self._clones[0], i, a, values, out, failed)
            return
        # items are handed out one at a time from a shared counter (next() on it is atomic
        # under the GIL): a worker that finishes early takes over the other's remaining items
        counter = itertools.count()
        stop = threading.Event()

        def work(fx: Effect) -> None:
            for i in counter:
                if i >= b or stop.is_set():
                    return
                self._render_one(fx, i, a, values, out, failed)

        futures = [self._executor.submit(work, fx) for fx in self._clones[:n]]
        try:
            for f in futures:
                f.result()
        except BaseException:
            # e.g. Ctrl-C: let running items finish so no clone is ever used by two threads
            stop.set()
            concurrent.futures.wait(futures)
            raise

    # ---- processes ------------------------------------------------------------------------
    # Items go out in "guided" chunks (a share of what is left, shrinking towards the end) and
    # each worker keeps one chunk queued behind the one it renders, so it never waits for the
    # parent; the parent copies a chunk's input in just before sending it and its output out
    # as soon as it is done, while the workers go on.
    JOBS_AHEAD = 2

    def _render_processes(self, a, values, n_out, failed) -> np.ndarray:
        b, n_in = a.shape
        shared_in = self._shared[0].view(b, n_in)
        shared_out = self._shared[1].view(b, n_out)
        status = self._shared[2].view(b)
        status[:] = QUEUED
        head = (tuple(_shm_name(sh) for sh in self._shared), b, n_in, n_out)
        out = np.empty((b, n_out), dtype=np.float32)
        for k, w in enumerate(self._procs):
            if w.busy or not w.proc.is_alive():
                self._replace(k)  # dead, or still busy with an interrupted call: start afresh
        st = _ProcessBatch(a, values, head, status, shared_in, shared_out, out, failed)
        self._dispatch(st)
        while any(w.busy for w in self._procs):
            busy = {k: w for k, w in enumerate(self._procs) if w.busy}
            waitables = {}
            for k, w in busy.items():
                waitables[w.conn] = k
                waitables[w.proc.sentinel] = k
            timeout = None
            if self.item_timeout is not None:
                now = time.monotonic()
                timeout = max(0.0, min(w.next_check(self.item_timeout, now) - now for w in busy.values()))
            ready = mpc.wait(list(waitables), timeout=timeout)
            if not ready:
                self._check_progress(busy, st)
            for k in sorted({waitables[r] for r in ready}):
                self._service(k, st)
            self._dispatch(st)
        if st.bad_input:
            _raise_non_finite(self.effect.name, a)
        return out

    def _dispatch(self, st: _ProcessBatch) -> None:
        """Top every worker up to JOBS_AHEAD chunks while items are left."""
        n = len(self._procs)
        for k, w in enumerate(self._procs):
            while st.todo and not st.bad_input and len(w.jobs) < self.JOBS_AHEAD:
                size = max(1, -(-len(st.todo) // (2 * n)))
                chunk, st.todo = st.todo[:size], st.todo[size:]
                if not st.copy_in(max(chunk) + 1):
                    st.todo = []  # a NaN/inf input: finish what is out, then raise
                    return
                try:
                    w.send(st.head, chunk, st.values)
                except OSError:  # the worker is already dead (its pipe is broken): its items go back
                    self._fail_and_restart(k, w.death_reason(), st)
                    w = self._procs[k]

    def _service(self, k: int, st: _ProcessBatch) -> None:
        """Read what worker ``k`` sent; if it has died, blame the item it had started."""
        w = self._procs[k]
        try:
            while w.jobs and w.conn.poll():
                msg = w.conn.recv()
                if msg is None:  # a job is done: each of its items is OK or FAILED
                    st.finish(w.jobs.popleft())
                    w.rendered = True
                    self._startup_deaths = 0
                    w.started_seen, w.last_progress = 0, time.monotonic()
                else:
                    st.failed[msg[0]] = msg[1]
        except (EOFError, OSError):
            pass
        if w.jobs and not w.proc.is_alive():
            self._fail_and_restart(k, w.death_reason(), st)

    def _check_progress(self, busy: dict, st: _ProcessBatch) -> None:
        """After a wait timed out: kill workers that started no new item for ``item_timeout``."""
        now = time.monotonic()
        for k, w in busy.items():
            started = int(np.count_nonzero(st.status[w.jobs[0]]))
            if started != w.started_seen:
                w.started_seen, w.last_progress = started, now
            elif now >= w.deadline(self.item_timeout):
                self._fail_and_restart(k, f"timeout: no result within {self.item_timeout:g} s", st)

    def _give_up(self, reason: str, st: _ProcessBatch) -> None:
        """Stop restarting workers that die before rendering anything, and say why."""
        st.todo = []
        for w in self._procs:
            w.jobs.clear()
            w.kill()
        self._closed = True
        self._finalizer()
        if reason.startswith("timeout"):
            raise RenderPoolError(
                f"{self.effect.name}: {self._startup_deaths} render worker processes in a row started no item "
                f"within {STARTUP_GRACE + (self.item_timeout or 0):g} s ({reason}); the machine is overloaded or "
                "the effect is slow to load: raise item_timeout, or use mode='thread'"
            )
        raise RenderPoolError(
            f"{self.effect.name}: {self._startup_deaths} render worker processes in a row died before rendering "
            f"anything (last: {reason}). Likely cause: the 'spawn' start method re-imports your main script in "
            "every worker, so a script that renders at import time must put that code under "
            '`if __name__ == "__main__":` (the workers\' error output above says more). Otherwise the effect '
            "cannot be built in a fresh process (plugin missing there?); mode='thread' avoids processes."
        )

    def _replace(self, k: int) -> None:
        self._procs[k].kill()
        self._procs[k] = self._new_proc()  # same list object: the finalizer sees the new worker
        self.restarts += 1

    #: workers that may die in a row before starting any item before the pool gives up
    MAX_STARTUP_DEATHS = 3

    def _fail_and_restart(self, k: int, reason: str, st: _ProcessBatch) -> None:
        """Worker ``k`` died or hung: its STARTED item fails, its unstarted items go back."""
        w = self._procs[k]
        started_any = w.rendered or any(st.status[i] != QUEUED for job in w.jobs for i in job)
        self._startup_deaths = 0 if started_any else self._startup_deaths + 1
        if self._startup_deaths >= self.MAX_STARTUP_DEATHS:
            self._give_up(reason, st)
        try:  # reasons the worker sent before it died
            while w.conn.poll():
                msg = w.conn.recv()
                if msg is not None:
                    st.failed[msg[0]] = msg[1]
        except (EOFError, OSError):
            pass
        items = [i for job in w.jobs for i in job]
        for i in items:
            if st.status[i] == STARTED:
                st.failed[i] = f"{reason} while rendering this item"
        done = [i for i in items if st.status[i] != QUEUED]
        if done:
            st.finish(done)
        st.todo = [i for i in items if st.status[i] == QUEUED] + st.todo
        w.jobs.clear()
        self._replace(k)

    def __repr__(self) -> str:
        return (
            f"<RenderPool {self.effect.name} {self.mode} x{self.workers} @ {self.sample_rate} Hz"
            f"{' closed' if self._closed else ''}>"
        )


# ---- shared pools ----------------------------------------------------------------------------
#: pools :func:`shared_pool` keeps alive at once; the least recently used beyond are closed
#: one per study effect: a stage that cycles through the nine effects (plane, knobs, scoring) then
#: finds every pool open instead of starting ~1 s of LV2 worker processes per effect per call
MAX_SHARED_POOLS = 9
_SHARED: collections.OrderedDict = collections.OrderedDict()  # key -> (pool, weakref to effect or None)
_SHARED_LOCK = threading.Lock()


def _effect_identity(effect: Effect) -> tuple[tuple, weakref.ref | None]:
    """A key equal for effects that render alike: their pickled state (what process workers
    get), else the object itself (held by a weak reference so a recycled id never matches)."""
    try:
        state = pickle.dumps(effect, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:
        return ("object", id(effect)), weakref.ref(effect)
    return ("state", type(effect).__module__, type(effect).__qualname__, hashlib.sha1(state).hexdigest()), None


def shared_pool(effect: Effect, sample_rate: int, workers: int = 2, **kwargs) -> RenderPool:
    """A :class:`RenderPool` kept open for later calls with the same effect and settings.

    Starting a process pool costs about a second (LV2, VST3), so code that renders in many
    small calls shares pools through here instead of opening one per call. The pool is
    keyed by the effect's state (equal effects share a pool), ``sample_rate``, ``workers``
    and every other :class:`RenderPool` argument. At most :data:`MAX_SHARED_POOLS` stay
    open (least recently used closed first); all are closed at exit or by
    :func:`close_shared_pools`. Do not close the returned pool yourself (a closed or
    broken pool is replaced on the next call anyway). A forked child process never uses
    its parent's pools. Thread-safe: calls on one pool take turns. An open process pool keeps
    its shared-memory buffers (input and output of its largest batch so far) until it is
    closed; callers render in chunks, and :func:`close_shared_pools` frees everything.
    """
    ident, ref = _effect_identity(effect)
    key = (ident, int(sample_rate), int(workers), tuple(sorted(kwargs.items())))
    evicted: list[RenderPool] = []
    with _SHARED_LOCK:
        entry = _SHARED.get(key)
        if entry is not None and (entry[0]._closed or (entry[1] is not None and entry[1]() is not effect)):
            evicted.append(_SHARED.pop(key)[0])
            entry = None
        if entry is None:
            entry = (RenderPool(effect, sample_rate, workers=workers, **kwargs), ref)
            _SHARED[key] = entry
        _SHARED.move_to_end(key)
        while len(_SHARED) > MAX_SHARED_POOLS:
            evicted.append(_SHARED.popitem(last=False)[1][0])
    for pool in evicted:
        pool.close()
    return entry[0]


def close_shared_pools() -> None:
    """Close every pool :func:`shared_pool` holds (also run at interpreter exit)."""
    with _SHARED_LOCK:
        pools = [pool for pool, _ in _SHARED.values()]
        _SHARED.clear()
    for pool in pools:
        pool.close()


def _forget_shared_pools_after_fork() -> None:
    # the child got copies of the parent's pool objects: drop them without stopping the
    # parent's workers (their finalizers would otherwise run at the child's exit)
    global _SHARED_LOCK
    _SHARED_LOCK = threading.Lock()
    for pool, _ in _SHARED.values():
        pool._finalizer.detach()
        pool._closed = True
        pool._closed_why = " (a shared pool of the parent process, unusable after fork: get one in this process)"
    _SHARED.clear()


atexit.register(close_shared_pools)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_shared_pools_after_fork)


def render_batch(
    effect: Effect, audios, params01, sample_rate: int, workers: int = 2, *, reuse: bool = False, **kwargs
) -> RenderResult:
    """One :meth:`RenderPool.render` call: a fresh pool, closed afterwards, or with
    ``reuse=True`` the :func:`shared_pool` for these settings, left open for the next call."""
    if reuse:
        return shared_pool(effect, sample_rate, workers=workers, **kwargs).render(audios, params01)
    with RenderPool(effect, sample_rate, workers=workers, **kwargs) as pool:
        return pool.render(audios, params01)
