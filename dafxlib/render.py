"""Batched, parallel rendering through one effect, with bad items reported instead of fatal.

:class:`RenderPool` keeps its workers alive between calls (SPSA renders every training
step). Effects that release the GIL (pedalboard, numba, numpy) run in threads, one effect
clone per worker thread. Effects with ``needs_process_isolation`` (LV2, VST3) run in worker
processes that each build their own instance, so a plugin that crashes (segfault, abort)
fails only the item it was rendering: the dead worker is replaced and the rest of the batch
goes on. Items whose output is non-finite or silent, or whose render raised, are listed in
:attr:`RenderResult.failed` and left as rows of zeros. Results are bit-identical to calling
``effect.process`` serially on each row.
"""
from __future__ import annotations

import collections
import concurrent.futures
import math
import multiprocessing as mp
import multiprocessing.connection as mpc
import pickle
import signal
from multiprocessing import shared_memory
import threading
import time
import weakref
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from .effects.base import Effect
from .errors import EffectError

__all__ = ["RenderPool", "RenderResult", "render_batch"]


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

    def raise_if_failed(self) -> "RenderResult":
        """Raise :class:`EffectError` listing the failures, if there are any."""
        if self.failed:
            shown = "; ".join(f"item {i}: {r}" for i, r in self.failed[:5])
            more = f" (+{len(self.failed) - 5} more)" if len(self.failed) > 5 else ""
            raise EffectError(f"{len(self.failed)} of {self.audio.shape[0]} renders failed: {shown}{more}")
        return self


def _check_output(y: np.ndarray, x: np.ndarray, silence_db: float) -> str | None:
    """Reason an output is unusable, or None."""
    bad = ~np.isfinite(y)
    if bad.any():
        return f"non-finite output ({int(bad.sum())} NaN/inf samples)"
    # (np.square, not np.dot: BLAS threads would fight the render workers for the cores)
    rms = math.sqrt(float(np.mean(np.square(y, dtype=np.float64))))
    db = 20.0 * math.log10(rms) if rms > 0 else -math.inf
    if db < silence_db:
        rms_in = math.sqrt(float(np.mean(np.square(x, dtype=np.float64))))
        if rms_in > 0 and 20.0 * math.log10(rms_in) >= silence_db:
            return f"silent output (rms {db:.1f} dBFS from a {20.0 * math.log10(rms_in):.1f} dBFS input)"
    return None


def _exception_reason(e: BaseException) -> str:
    return f"exception: {type(e).__name__}: {e}"


# ---- process workers -----------------------------------------------------------------
# Audio travels through two shared-memory blocks (batch in, batch out); the pipe carries
# only indices, parameters and per-item status, which keeps the per-call overhead small.
class _Shared:
    """A float32 (rows, cols) array in shared memory, grown on demand by the parent."""

    def __init__(self):
        self.shm: shared_memory.SharedMemory | None = None

    def view(self, rows: int, cols: int) -> np.ndarray:
        need = max(rows * cols * 4, 1)
        if self.shm is None or self.shm.size < need:
            self.release()
            self.shm = shared_memory.SharedMemory(create=True, size=need)
        return np.ndarray((rows, cols), dtype=np.float32, buffer=self.shm.buf)

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


def _process_worker_main(conn, effect_bytes: bytes, sample_rate: int, tail_seconds: float) -> None:
    """Worker process: build the effect once, then render jobs read from shared memory."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C belongs to the parent
    effect = pickle.loads(effect_bytes)
    in_cache: dict = {}
    out_cache: dict = {}
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):
            return
        if job is None:
            return
        in_name, out_name, rows, n_in, n_out, indices, params = job
        a = np.ndarray((rows, n_in), np.float32, buffer=_attach(in_cache, in_name).buf)
        out = np.ndarray((rows, n_out), np.float32, buffer=_attach(out_cache, out_name).buf)
        for k, i in enumerate(indices):
            try:
                y = effect.process(a[i], sample_rate, params[k], tail_seconds=tail_seconds)
                if y.shape[0] != n_out:
                    raise EffectError(f"{effect.name} returned {y.shape[0]} samples, expected {n_out}")
                out[i] = y
                msg = (i, True, None)
            except Exception as e:  # reported per item; the worker lives on
                msg = (i, False, _exception_reason(e))
            conn.send(msg)
        del a, out


class _ProcessWorker:
    def __init__(self, ctx, effect_bytes: bytes, sample_rate: int, tail_seconds: float):
        self.conn, child = ctx.Pipe(duplex=True)
        self.proc = ctx.Process(target=_process_worker_main, args=(child, effect_bytes, sample_rate, tail_seconds),
                                daemon=True, name="dafx-render-worker")
        self.proc.start()
        child.close()
        self.pending: collections.deque[int] = collections.deque()
        self.last_progress = time.monotonic()

    def send(self, job_head: tuple, indices: list[int], params: np.ndarray) -> None:
        self.pending.extend(indices)
        self.last_progress = time.monotonic()
        self.conn.send(job_head + (list(indices), params[indices]))

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

    def __init__(self, effect: Effect, sample_rate: int, workers: int = 2, *, mode: str = "auto",
                 silence_db: float = -90.0, tail_seconds: float = 0.0, item_timeout: float | None = 300.0,
                 mp_context: str = "spawn"):
        if not isinstance(effect, Effect):
            raise EffectError(f"RenderPool needs an Effect, got {type(effect).__name__}")
        if not isinstance(sample_rate, (int, np.integer)) or sample_rate <= 0:
            raise EffectError(f"sample_rate must be a positive int, got {sample_rate!r}")
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
        self._shared = [_Shared(), _Shared()]  # process mode: batch in, batch out
        self.restarts = 0
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
                raise EffectError(f"{effect.name}: process workers need a picklable effect ({e}); "
                                  "use mode='thread' or make the effect picklable") from e
            self._procs = [self._new_proc() for _ in range(self.workers)]
        self._finalizer = weakref.finalize(self, _shutdown, self._executor, self._procs, self._shared)

    # ---- lifecycle ----------------------------------------------------------------------
    def __enter__(self) -> "RenderPool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Stop the workers (idempotent)."""
        self._closed = True
        self._finalizer()

    def _new_proc(self) -> _ProcessWorker:
        return _ProcessWorker(self._ctx, self._effect_bytes, self.sample_rate, self.tail_seconds)

    # ---- rendering ------------------------------------------------------------------------
    def _prepare(self, audios, params01) -> tuple[np.ndarray, np.ndarray]:
        name = self.effect.name
        if isinstance(audios, (list, tuple)):
            lengths = {np.asarray(a).reshape(-1).shape[0] for a in audios}
            if len(lengths) > 1:
                raise EffectError(f"{name}: all clips of a batch must have the same length, got {sorted(lengths)}")
            audios = np.stack([np.asarray(a, dtype=np.float32).reshape(-1) for a in audios]) if audios else \
                np.zeros((0, 0), np.float32)
        a = np.ascontiguousarray(audios, dtype=np.float32)
        if a.ndim != 2 or a.shape[1] == 0:
            raise EffectError(f"{name}: audios must have shape (batch, samples), got {a.shape}")
        if not np.isfinite(a).all():
            rows = np.nonzero(~np.isfinite(a).all(axis=1))[0]
            raise EffectError(f"{name}: input clips {rows[:10].tolist()} contain NaN or inf")
        p = np.asarray(params01, dtype=np.float64)
        if p.ndim == 1:
            p = np.broadcast_to(p, (a.shape[0], p.shape[0]))
        if p.ndim != 2 or p.shape[0] != a.shape[0]:
            raise EffectError(f"{name}: params01 must have shape (batch={a.shape[0]}, {self.effect.n_params}), "
                              f"got {np.shape(params01)}")
        if p.shape[1] != self.effect.n_params:
            raise EffectError(f"{name}: expected {self.effect.n_params} parameters {self.effect.param_names}, "
                              f"got {p.shape[1]}")
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
            raise EffectError("this RenderPool is closed; create a new one")
        a, p = self._prepare(audios, params01)
        b = a.shape[0]
        n_out = a.shape[1] + (int(round(self.tail_seconds * self.sample_rate)) if self.tail_seconds > 0 else 0)
        out = np.zeros((b, n_out), dtype=np.float32)
        failed: dict[int, str] = {}
        if b == 0:
            return RenderResult(out, [], np.zeros(0, bool))
        with self._lock:
            if self.mode == "process":
                self._render_processes(a, p, out, failed)
            else:
                self._render_threads(a, p, out, failed)
        ok = np.ones(b, dtype=bool)
        for i in failed:
            ok[i] = False
            out[i] = 0.0
        return RenderResult(out, sorted(failed.items()), ok)

    def _slices(self, b: int, n: int) -> list[list[int]]:
        n = max(1, min(n, b))
        bounds = np.linspace(0, b, n + 1).round().astype(int)
        return [list(range(bounds[k], bounds[k + 1])) for k in range(n) if bounds[k + 1] > bounds[k]]

    def _accept(self, i: int, y: np.ndarray, a: np.ndarray, out: np.ndarray, failed: dict[int, str]) -> None:
        reason = _check_output(y, a[i], self.silence_db)
        if reason is not None:
            failed[i] = reason
        else:
            out[i] = y

    def _render_rows(self, fx: Effect, rows: Sequence[int], a, p, out, failed) -> None:
        for i in rows:
            try:
                y = fx.process(a[i], self.sample_rate, p[i], tail_seconds=self.tail_seconds)
            except Exception as e:
                failed[i] = _exception_reason(e)
                continue
            self._accept(i, y, a, out, failed)

    def _render_threads(self, a, p, out, failed) -> None:
        slices = self._slices(a.shape[0], len(self._clones))
        if self._executor is None or len(slices) == 1:
            self._render_rows(self._clones[0], slices[0], a, p, out, failed)
            return
        futures = [self._executor.submit(self._render_rows, self._clones[k], rows, a, p, out, failed)
                   for k, rows in enumerate(slices)]
        try:
            for f in futures:
                f.result()
        except BaseException:
            # e.g. Ctrl-C: let running slices finish so no clone is ever used by two threads
            for f in futures:
                f.cancel()
            concurrent.futures.wait(futures)
            raise

    def _render_processes(self, a, p, out, failed) -> None:
        b, n_in = a.shape
        n_out = out.shape[1]
        shared_in = self._shared[0].view(b, n_in)
        shared_out = self._shared[1].view(b, n_out)
        shared_in[:] = a
        head = (self._shared[0].shm.name, self._shared[1].shm.name, b, n_in, n_out)
        self._job = (head, p, shared_out)
        slices = self._slices(b, len(self._procs))
        for k, w in enumerate(self._procs):
            if w.pending or not w.proc.is_alive():
                self._replace(k)  # dead, or still busy with an interrupted call: start afresh
        for k, rows in enumerate(slices):
            self._procs[k].send(head, rows, p)
        while any(w.pending for w in self._procs):
            waitables = {}
            for k, w in enumerate(self._procs):
                if w.pending:
                    waitables[w.conn] = k
                    waitables[w.proc.sentinel] = k
            timeout = None
            if self.item_timeout is not None:
                now = time.monotonic()
                timeout = max(0.0, min(w.last_progress + self.item_timeout - now
                                       for w in self._procs if w.pending))
            ready = mpc.wait(list(waitables), timeout=timeout)
            if not ready:
                now = time.monotonic()
                for k, w in enumerate(self._procs):
                    if w.pending and now - w.last_progress >= self.item_timeout:
                        self._fail_and_restart(k, f"timeout: no result within {self.item_timeout:g} s", failed)
                continue
            handled = set()
            for r in ready:
                k = waitables[r]
                if k in handled:
                    continue
                w = self._procs[k]
                if r is w.conn:
                    try:
                        msg = w.conn.recv()
                    except (EOFError, OSError):
                        handled.add(k)
                        self._fail_and_restart(k, w.death_reason(), failed)
                        continue
                    self._take(w, msg, a, out, failed)
                else:
                    # the process ended: collect what it sent before dying, blame the next item
                    try:
                        while w.pending and w.conn.poll():
                            self._take(w, w.conn.recv(), a, out, failed)
                    except (EOFError, OSError):
                        pass
                    handled.add(k)
                    if w.pending:
                        self._fail_and_restart(k, w.death_reason(), failed)
                    else:
                        self._replace(k)

    def _take(self, w: _ProcessWorker, msg, a, out, failed) -> None:
        i, ok, payload = msg
        if not w.pending or w.pending[0] != i:
            raise EffectError(f"render worker answered item {i} out of order")  # a bug, not bad input
        w.pending.popleft()
        w.last_progress = time.monotonic()
        if ok:
            self._accept(i, self._job[2][i], a, out, failed)
        else:
            failed[i] = payload

    def _replace(self, k: int) -> None:
        self._procs[k].kill()
        self._procs[k] = self._new_proc()  # same list object: the finalizer sees the new worker
        self.restarts += 1

    def _fail_and_restart(self, k: int, reason: str, failed: dict[int, str]) -> None:
        w = self._procs[k]
        culprit = w.pending.popleft()
        rest = list(w.pending)
        w.pending.clear()
        failed[culprit] = f"{reason} while rendering this item"
        self._replace(k)
        if rest:
            head, p, _ = self._job
            self._procs[k].send(head, rest, p)

    def __repr__(self) -> str:
        return (f"<RenderPool {self.effect.name} {self.mode} x{self.workers} @ {self.sample_rate} Hz"
                f"{' closed' if self._closed else ''}>")


def render_batch(effect: Effect, audios, params01, sample_rate: int, workers: int = 2, **kwargs) -> RenderResult:
    """One-off :meth:`RenderPool.render` (creates and closes a pool)."""
    with RenderPool(effect, sample_rate, workers=workers, **kwargs) as pool:
        return pool.render(audios, params01)
