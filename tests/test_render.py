"""RenderPool: parallel results equal serial ones; bad renders are reported, bad input raises."""

from __future__ import annotations

import numpy as np
import pytest

from dafxlib.effects import ALL, get_effect
from dafxlib.effects.mda import mda_available
from dafxlib.effects.testing import FaultyEffect, probe_clip
from dafxlib.errors import EffectError
from dafxlib.render import RenderPool, RenderResult, render_batch

SR = 24_000


@pytest.fixture(scope="module")
def batch():
    return np.stack([probe_clip(SR, 0.25, seed=s) for s in range(6)])


def serial(effect, audios, params):
    return np.stack([effect.process(a, SR, p) for a, p in zip(audios, params)])


@pytest.mark.parametrize("key", ALL)
def test_thread_pool_matches_serial(key, batch):
    e = get_effect(key)
    params = np.random.default_rng(0).random((len(batch), e.n_params))
    with RenderPool(e, SR, workers=2) as pool:
        assert pool.mode == "thread"
        first = pool.render(batch, params)
        second = pool.render(batch[::-1], params[::-1])  # reused across calls, other order
    assert isinstance(first, RenderResult) and first.failed == [] and first.ok.all()
    expect = serial(e, batch, params)
    assert first.audio.dtype == np.float32 and first.audio.shape == batch.shape
    assert np.array_equal(first.audio, expect)
    assert np.array_equal(second.audio[::-1], expect)


def test_serial_mode_and_render_batch(batch):
    e = get_effect("overdrive")
    params = np.random.default_rng(1).random((len(batch), e.n_params))
    r = render_batch(e, batch, params, SR, workers=1)
    assert np.array_equal(r.audio, serial(e, batch, params))
    # one parameter row broadcasts over the batch; a list of clips is accepted
    r2 = render_batch(e, list(batch), params[0], SR, workers=2)
    assert np.array_equal(r2.audio, serial(e, batch, np.tile(params[0], (len(batch), 1))))


def test_bad_arguments_raise(batch):
    e = get_effect("delay")
    p = np.full((len(batch), e.n_params), 0.5)
    with RenderPool(e, SR, workers=2) as pool:
        with pytest.raises(EffectError, match="batch, samples"):
            pool.render(batch[0], p[:1])
        with pytest.raises(EffectError, match="expected 5 parameters"):
            pool.render(batch, p[:, :3])
        with pytest.raises(EffectError, match="shape"):
            pool.render(batch, p[:2])
        bad = p.copy()
        bad[3, 1] = 1.5
        with pytest.raises(EffectError, match=r"rows \[3\]"):
            pool.render(batch, bad)
        nan_audio = batch.copy()
        nan_audio[2, 5] = np.nan
        with pytest.raises(EffectError, match=r"clips \[2\]"):
            pool.render(nan_audio, p)
        with pytest.raises(EffectError, match="same length"):
            pool.render([batch[0], batch[1][:100]], p[:2])
    with pytest.raises(EffectError, match="closed"):
        pool.render(batch, p)
    with pytest.raises(EffectError):
        RenderPool(e, 24000.5)
    with pytest.raises(EffectError):
        RenderPool(e, SR, workers=0)


@pytest.mark.parametrize(
    "fault,reason", [("raise", "exception: RuntimeError"), ("nan", "non-finite"), ("silent", "silent output")]
)
def test_bad_items_reported_in_threads(fault, reason, batch):
    e = FaultyEffect(fault, process=False)
    params = np.zeros((len(batch), 2))
    params[:, 0] = 0.5  # 0 dB
    params[[1, 4], 1] = 1.0  # trigger the fault on items 1 and 4
    with RenderPool(e, SR, workers=2) as pool:
        r = pool.render(batch, params)
    assert [i for i, _ in r.failed] == [1, 4] and all(reason in why for _, why in r.failed)
    assert r.ok.tolist() == [True, False, True, True, False, True]
    assert not r.audio[[1, 4]].any()
    np.testing.assert_array_equal(r.audio[r.ok], batch[r.ok])
    with pytest.raises(EffectError, match="2 of 6 renders failed"):
        r.raise_if_failed()


def test_silent_input_is_not_a_failure(batch):
    e = FaultyEffect("silent", process=False)
    audio = batch.copy()
    audio[0] = 0.0
    r = render_batch(e, audio, np.array([0.5, 1.0]), SR, workers=1)
    assert [i for i, _ in r.failed] == [1, 2, 3, 4, 5]


def test_process_pool_survives_crashes(batch):
    """A worker that aborts (SIGABRT) or segfaults fails only its item; the pool goes on."""
    e = FaultyEffect("abort")
    params = np.zeros((len(batch), 2))
    params[:, 0] = np.linspace(0, 1, len(batch))
    params[[0, 4], 1] = 1.0
    with RenderPool(e, SR, workers=2) as pool:
        assert pool.mode == "process"
        r = pool.render(batch, params)
        assert [i for i, _ in r.failed] == [0, 4]
        assert all("crashed (SIGABRT)" in why for _, why in r.failed)
        good = np.ones(len(batch), bool)
        good[[0, 4]] = False
        assert np.array_equal(r.audio[good], serial(e, batch[good], params[good]))
        assert pool.restarts >= 2
        # still usable, with fresh workers
        ok_params = params.copy()
        ok_params[:, 1] = 0.0
        r2 = pool.render(batch, ok_params)
        assert r2.failed == [] and np.array_equal(r2.audio, serial(e, batch, ok_params))


def test_process_pool_segfault_and_exceptions(batch):
    params = np.zeros((3, 2))
    params[1, 1] = 1.0
    r = render_batch(FaultyEffect("segfault"), batch[:3], params, SR, workers=1)
    assert [i for i, _ in r.failed] == [1] and "SIGSEGV" in r.failed[0][1]
    assert r.ok.tolist() == [True, False, True]
    r = render_batch(FaultyEffect("raise"), batch[:3], params, SR, workers=1, mode="process")
    assert r.failed == [(1, "exception: RuntimeError: injected failure")]


def test_process_pool_timeout(batch):
    params = np.zeros((2, 2))
    params[0, 1] = 1.0
    r = render_batch(FaultyEffect("hang"), batch[:2], params, SR, workers=1, item_timeout=2.0)
    assert [i for i, _ in r.failed] == [0] and "timeout" in r.failed[0][1]
    assert r.ok.tolist() == [False, True]


@pytest.mark.skipif(not mda_available(), reason="Debian's mda-lv2 plugins are not installed")
def test_lv2_process_pool_matches_serial(batch):
    e = get_effect("delay", "mda")
    params = np.random.default_rng(2).random((len(batch), e.n_params))
    with RenderPool(e, SR, workers=2) as pool:
        assert pool.mode == "process"
        r = pool.render(batch, params)
        r2 = pool.render(batch, params)
    assert r.failed == []
    assert np.array_equal(r.audio, serial(e, batch, params)) and np.array_equal(r2.audio, r.audio)


def test_process_pool_many_chunks_with_crashes_and_failures():
    """Items go out in several chunks per worker; crashes in any chunk fail only their item,
    queued chunks of a dead worker are rendered by its replacement, reasons are kept."""
    clips = np.stack([probe_clip(SR, 0.05, seed=s) for s in range(24)])
    e = FaultyEffect("abort")
    params = np.zeros((24, 2))
    params[:, 0] = np.linspace(0, 1, 24)
    crash = [3, 10, 17, 23]
    params[crash, 1] = 1.0
    with RenderPool(e, SR, workers=2) as pool:
        r = pool.render(clips, params)
        assert [i for i, _ in r.failed] == crash and all("SIGABRT" in why for _, why in r.failed)
        good = np.setdiff1d(np.arange(24), crash)
        assert np.array_equal(r.audio[good], serial(e, clips[good], params[good]))
        assert not r.audio[crash].any() and pool.restarts >= len(crash)
    raising = FaultyEffect("raise")
    with RenderPool(raising, SR, workers=2) as pool:
        r = pool.render(clips, params)
    assert r.failed == [(i, "exception: RuntimeError: injected failure") for i in crash]


def test_process_pool_nan_input_raises_and_pool_recovers(batch):
    e = FaultyEffect("raise")
    p = np.zeros((len(batch), 2))
    bad = batch.copy()
    bad[4, 7] = np.inf
    with RenderPool(e, SR, workers=2) as pool:
        with pytest.raises(EffectError, match=r"clips \[4\]"):
            pool.render(bad, p)
        r = pool.render(batch, p)  # the same pool goes on with the next batch
    assert r.failed == [] and np.array_equal(r.audio, serial(e, batch, p))


def test_process_pool_slow_progress_is_not_a_timeout(batch):
    """item_timeout bounds one item, not a worker's whole share: 4 x 0.3 s on one worker
    with a 1 s timeout all succeed."""
    e = FaultyEffect("slow")
    p = np.zeros((4, 2))
    p[:, 1] = 1.0
    r = render_batch(e, batch[:4], p, SR, workers=1, mode="process", item_timeout=1.0)
    assert r.failed == [] and np.array_equal(r.audio, serial(FaultyEffect("raise"), batch[:4], np.zeros((4, 2))))


@pytest.mark.skipif(not mda_available(), reason="Debian's mda-lv2 plugins are not installed")
@pytest.mark.parametrize("key", ["delay", "ambience"])
def test_lv2_thread_pool_matches_serial(key, batch):
    """LV2 plugins may also run in threads (trusted plugins, no crash isolation): per-thread
    work buffers keep concurrent renders apart."""
    e = get_effect(key, "mda")
    params = np.random.default_rng(5).random((len(batch), e.n_params))
    with RenderPool(e, SR, workers=2, mode="thread") as pool:
        r = pool.render(batch, params)
    assert r.failed == [] and np.array_equal(r.audio, serial(e, batch, params))


# ---- shared pools (render_batch(..., reuse=True)) -----------------------------------------------
@pytest.fixture
def fresh_shared_pools():
    from dafxlib import render

    render.close_shared_pools()
    yield render
    render.close_shared_pools()


@pytest.mark.parametrize("key,effect_set", [("overdrive", "portable"), ("flanger", "mda")])
def test_shared_pool_reused_across_calls_and_equal_to_a_fresh_pool(key, effect_set, batch, fresh_shared_pools):
    render = fresh_shared_pools
    if effect_set == "mda" and not mda_available():
        pytest.skip("Debian's mda-lv2 plugins are not installed")
    e = get_effect(key, effect_set)
    params = np.random.default_rng(7).random((len(batch), e.n_params))
    r1 = render_batch(e, batch, params, SR, workers=2, reuse=True)
    pool = render.shared_pool(e, SR, workers=2)
    r2 = render_batch(e, batch[::-1], params[::-1], SR, workers=2, reuse=True)
    # an equal effect built anew shares the same pool; other settings get another one
    assert render.shared_pool(get_effect(key, effect_set), SR, workers=2) is pool
    assert render.shared_pool(e, SR, workers=1) is not pool
    assert len(render._SHARED) == 2 and not pool._closed
    if effect_set == "mda":
        assert pool.mode == "process" and pool.restarts == 0
        pids = [w.proc.pid for w in pool._procs]
        render_batch(e, batch, params, SR, workers=2, reuse=True)
        assert [w.proc.pid for w in pool._procs] == pids  # the same worker processes served every call
    fresh = render_batch(e, batch, params, SR, workers=2)
    assert r1.failed == [] and np.array_equal(r1.audio, fresh.audio)
    assert np.array_equal(r2.audio, fresh.audio[::-1])
    render.close_shared_pools()
    assert pool._closed and not render._SHARED


def test_shared_pools_are_bounded_and_a_closed_one_is_replaced(batch, fresh_shared_pools, monkeypatch):
    render = fresh_shared_pools
    monkeypatch.setattr(render, "MAX_SHARED_POOLS", 2)
    pools = [render.shared_pool(get_effect(k, "portable"), SR, workers=1) for k in ("overdrive", "delay", "ringmod")]
    assert pools[0]._closed and not pools[1]._closed and not pools[2]._closed  # least recently used closed
    assert len(render._SHARED) == 2
    pools[2].close()  # e.g. a process pool that gave up
    again = render.shared_pool(get_effect("ringmod", "portable"), SR, workers=1)
    assert again is not pools[2] and not again._closed
    r = render_batch(get_effect("ringmod", "portable"), batch[:2], np.full((2, 3), 0.5), SR, workers=1, reuse=True)
    assert r.failed == []


def test_shared_pools_not_inherited_by_a_forked_child(batch, fresh_shared_pools):
    import multiprocessing as mp

    render = fresh_shared_pools
    e = get_effect("overdrive", "portable")
    pool = render.shared_pool(e, SR, workers=1)
    ctx = mp.get_context("fork")
    q = ctx.Queue()

    def child():
        try:
            pool.render(batch[:1], np.full((1, e.n_params), 0.5))
            why = "rendered"
        except Exception as exc:  # the parent's pool says why it cannot serve here
            why = str(exc)
        q.put((len(render._SHARED), render.shared_pool(e, SR, workers=1) is not pool, "after fork" in why))

    p = ctx.Process(target=child)
    p.start()
    p.join(60)
    assert q.get(timeout=5) == (0, True, True)
    assert render.shared_pool(e, SR, workers=1) is pool and not pool._closed
