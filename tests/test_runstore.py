"""The packed run store (exporter/runstore.py) against a plain dict model: any sequence of puts,
updates, departures, releases, restores, expiries and dropped blocks leaves it knowing exactly what the
model knows, for UUID and other uids, with None and finite times."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace
from random import Random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exporter.parsing import Parsed, Run, RunError, Workflow, new_run
from exporter.runstore import API_STATUSES, STATUSES, RunBlock, RunStore, key_of, packed_keys, uid_of
from exporter.state import WorkspaceState
from exporter.statuses import NEEDS_ACTION_STATUSES, STATUS_LABEL_VALUES

BLOCKS = ("wf-a", "wf-b", "wf-c")
T = 1_764_633_600.0


def test_a_canonical_uuid_is_an_int_and_turns_back_into_the_same_string() -> None:
    uid = "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f0"
    assert key_of(uid) == bytes.fromhex(uid.replace("-", ""))
    assert uid_of(key_of(uid)) == uid
    assert uid_of(key_of("00000000-0000-0000-0000-000000000000")) == "00000000-0000-0000-0000-000000000000"


def test_a_uid_that_is_not_a_canonical_uuid_stays_a_string() -> None:
    for uid in (
        "0F1E2D3C-4B5A-4978-8695-A4B3C2D1E0F0",  # upper case: int() would take it, the string differs
        "0f1e2d3c4b5a49788695a4b3c2d1e0f0",
        "{0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f0}",
        "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f_",
        " f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f0",
        "+f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f0",
        "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f0\n",
        "run-1",
        "",
    ):
        assert key_of(uid) == uid
        assert uid_of(key_of(uid)) == uid


uuids = st.uuids().map(str)
others = st.one_of(
    st.sampled_from(["r1", "r2", "run-3", "", "é", "0F1E2D3C-4B5A-4978-8695-A4B3C2D1E0F0"]),
    st.text(max_size=40),
    uuids.map(str.upper),
)
uid_pool = st.lists(st.one_of(uuids, others), min_size=1, max_size=12, unique=True)
times = st.one_of(st.none(), st.just(0.0), st.floats(allow_nan=False, allow_infinity=False))
errors = st.one_of(st.none(), st.builds(RunError, st.text(max_size=5), st.sampled_from(["", "other"])))


@given(st.lists(st.one_of(uuids, others), max_size=6))
def test_a_page_of_keys_at_once_is_each_key_end_to_end(uids: list[str]) -> None:
    keys = [key_of(uid) for uid in uids]
    expected = b"".join(key for key in keys if isinstance(key, bytes))
    assert packed_keys(uids) == (expected if all(isinstance(key, bytes) for key in keys) else None)


def test_uids_that_join_into_uuids_are_not_taken_for_them() -> None:
    one, two = str(uuid.UUID(int=1)), str(uuid.UUID(int=2))
    assert packed_keys([one[:35], one[35] + two]) is None  # 35 + 37 characters: two UUIDs once joined
    assert packed_keys([one, two]) == bytes.fromhex(one.replace("-", "") + two.replace("-", ""))


@st.composite
def runs(draw: st.DrawFn, uid: str) -> Run:
    status = draw(st.sampled_from(STATUS_LABEL_VALUES))
    return new_run(
        uid,
        draw(st.text(max_size=6)),
        status,
        draw(st.sampled_from(["", "finished", "failed", "x-api"])),
        draw(times),
        draw(times),
        draw(times),
        draw(times),
        draw(errors) if status in NEEDS_ACTION_STATUSES else None,
    )


@dataclass
class Model:
    """uid -> (block name, the run listed, or (status, api_status, when) vanished)."""

    runs: dict[str, tuple[str, Run | tuple[str, str, float]]] = field(default_factory=dict)


def shown(run: Run) -> Run:
    """What the store keeps of a run: a needs-action run's name and error, no one else's."""
    if run.status in NEEDS_ACTION_STATUSES:
        return run
    return new_run(
        run.uid,
        "",
        run.status,
        run.api_status,
        run.start_time,
        run.finish_time,
        run.scheduled_time,
        run.postponed_until,
    )


def check(store: RunStore, blocks: dict[str, RunBlock], model: Model) -> None:
    assert len(store) == len(model.runs)
    for name, block in blocks.items():
        mine = {uid: held for uid, (owner, held) in model.runs.items() if owner == name}
        listed = {uid: run for uid, run in mine.items() if isinstance(run, Run)}
        assert len(block) == len(listed)
        assert block.vanished_count == len(mine) - len(listed)
        expected = {(uid, run.status, run.api_status) for uid, run in listed.items()}
        expected |= {(uid, *gone[:2]) for uid, gone in mine.items() if not isinstance(gone, Run)}
        assert set(block.records()) == expected
        assert len(list(block.records())) == len(mine)
        for uid, held in mine.items():
            assert store.holder(uid) is block
            if isinstance(held, Run):
                assert block.lists(uid)
                assert block.known(uid) == (held.status, held.api_status)
                assert block.run(uid) == shown(held)
                assert block.same(uid, held)
                assert block.vanished_at(uid) is None
            else:
                assert not block.lists(uid)
                assert block.known(uid) == held[:2]
                assert block.run(uid) is None
                assert block.vanished_at(uid) == held[2]
        for uid in model.runs.keys() - mine.keys():
            assert block.known(uid) is None
            assert not block.lists(uid)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data(), uid_pool)
def test_the_store_knows_what_a_dict_knows(data: st.DataObject, pool: list[str]) -> None:
    store = RunStore()
    blocks = {name: store.block(name) for name in BLOCKS}
    model = Model()
    for _ in range(data.draw(st.integers(0, 60))):
        op = data.draw(
            st.sampled_from(["put", "put", "put", "leave", "release", "remember", "expire", "drop"])
        )
        uid = data.draw(st.sampled_from(pool))
        name = data.draw(st.sampled_from(BLOCKS))
        block = blocks[name]
        held = model.runs.get(uid)
        if op == "put":
            run = data.draw(runs(uid))
            block.put(run)  # taken from any other block that held it
            model.runs[uid] = (name, run)
        elif op == "leave" and held is not None and isinstance(held[1], Run):
            when = data.draw(st.floats(0, 1e6))
            located = store.locate(uid)
            assert located is not None
            holder, vanished, slot = located
            assert not vanished
            holder.vanish(slot, when)
            model.runs[uid] = (held[0], (held[1].status, held[1].api_status, when))
        elif op == "release":
            known = block.release(uid)
            if held is not None and held[0] == name:
                expected = held[1]
                assert known == (
                    (expected.status, expected.api_status) if isinstance(expected, Run) else expected[:2]
                )
                del model.runs[uid]
            else:
                assert known is None
        elif op == "remember" and held is None:
            status = data.draw(st.sampled_from(STATUS_LABEL_VALUES))
            api = data.draw(st.sampled_from(["", "finished", "x-api"]))
            when = data.draw(st.floats(0, 1e6))
            block.remember(key_of(uid), STATUSES.code(status), API_STATUSES.code(api), when)
            model.runs[uid] = (name, (status, api, when))
        elif op == "expire":
            now, after = data.draw(st.floats(0, 2e6)), data.draw(st.floats(0, 1e6))
            block.forget_vanished(now, after)
            for gone_uid, (owner, gone) in list(model.runs.items()):
                if owner == name and not isinstance(gone, Run) and now - gone[2] > after:
                    del model.runs[gone_uid]
        elif op == "drop":
            store.drop(block)
            blocks[name] = store.block(name)
            model.runs = {u: h for u, h in model.runs.items() if h[0] != name}
        check(store, blocks, model)


def test_a_block_dropped_frees_its_id_and_keeps_the_others_runs() -> None:
    store = RunStore()
    first, second = store.block("a"), store.block("b")
    uid = str(uuid.UUID(int=7))
    first.put(new_run(uid, "n", "running", "running", 1.0, None, None))
    second.put(new_run("r", "n", "warning", "warning", 1.0, 2.0, None))
    store.drop(first)
    third = store.block("c")
    assert third.id == first.id
    assert store.holder(uid) is None
    assert store.holder("r") is second
    assert second.run("r") == new_run("r", "n", "warning", "warning", 1.0, 2.0, None)


def test_positions_follow_the_listing_and_renumber_before_they_overflow() -> None:
    store = RunStore()
    block = store.block("a")
    for number in range(3):
        block.put(new_run(f"r{number}", "", "running", "running", None, None, None))
    assert list(block.position) == [0, 1, 2]
    block.next_position = (1 << 32) - 1
    block.put(new_run("r3", "", "running", "running", None, None, None))
    assert list(block.position) == [0, 1, 2, 3]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 2**32))
def test_thousands_of_runs_grow_and_shrink_the_table_as_a_dict_would(seed: int) -> None:
    """Enough runs to grow the table many times, and removals in every order (the deletions that
    shift entries back, around the end of the table too)."""
    random = Random(seed)
    store = RunStore()
    blocks = {name: store.block(name) for name in BLOCKS}
    model = Model()
    pool = [str(uuid.UUID(int=random.getrandbits(128))) for _ in range(3000)] + [f"r{n}" for n in range(50)]
    for step in range(6000):
        uid = random.choice(pool)
        name = random.choice(BLOCKS)
        held = model.runs.get(uid)
        roll = random.random()
        if roll < 0.55:
            status = random.choice(STATUS_LABEL_VALUES)
            run = new_run(uid, "n", status, "x", float(step), None, None)
            blocks[name].put(run)
            model.runs[uid] = (name, run)
        elif roll < 0.75 and held is not None and isinstance(held[1], Run):
            located = store.locate(uid)
            assert located is not None
            located[0].vanish(located[2], float(step))
            model.runs[uid] = (held[0], (held[1].status, held[1].api_status, float(step)))
        elif roll < 0.9:
            blocks[name].release(uid)
            if held is not None and held[0] == name:
                del model.runs[uid]
        elif roll < 0.995:
            blocks[name].forget_vanished(float(step), 500.0)
            model.runs = {
                u: h
                for u, h in model.runs.items()
                if not (h[0] == name and not isinstance(h[1], Run) and step - h[1][2] > 500.0)
            }
        else:
            store.drop(blocks[name])
            blocks[name] = store.block(name)
            model.runs = {u: h for u, h in model.runs.items() if h[0] != name}
    check(store, blocks, model)
    for uid in pool:
        assert (store.holder(uid) is None) == (uid not in model.runs)


def api_order(state: WorkspaceState, workflow: str) -> list[str]:
    (snapshot,) = (w for w in state.snapshot.workflows if w.uid == workflow)
    return list(snapshot.runs_by_api_status)


def test_api_statuses_show_in_the_order_the_listing_first_shows_them() -> None:
    """``runs_by_api_status`` is rendered in its order: the listing's (a complete read), the runs kept
    then those added at the end (an upsert), as a dict of the runs listed would give, whatever slots
    the runs moved to."""
    wf = Workflow("wf", "wf")
    state = WorkspaceState("acme")
    state.workflows_listed([wf], now=T)
    finished = [new_run(f"f{n}", "", "finished", "finished", T, T, None) for n in range(3)]
    failed = new_run("x", "", "shutdown", "failed", T, T, None)
    running = new_run("r", "", "running", "running", T, None, None)
    state.runs_read(wf, Parsed([*finished, failed]), now=T)
    assert api_order(state, "wf") == ["finished", "failed"]
    state.runs_read(wf, Parsed([running, finished[2], failed]), now=T + 1)  # two left: vanished
    assert api_order(state, "wf") == ["running", "finished", "failed"]
    state.runs_read(wf, Parsed([failed, finished[0], running]), now=T + 2)  # finished[0] back
    assert api_order(state, "wf") == ["failed", "finished", "running"]
    pending = new_run("p", "", "pending", "pending", T, None, None)
    state.runs_read(wf, Parsed([pending, running]), complete=False, now=T + 3)  # an upsert: at the end
    assert api_order(state, "wf") == ["failed", "finished", "running", "pending"]
    state.run_pushed("wf", new_run("q", "", "paused", "paused", T, None, None), None)
    assert api_order(state, "wf") == ["failed", "finished", "running", "pending", "paused"]


def test_a_uid_listed_twice_in_one_read_compares_each_time_with_what_was_known_before_it() -> None:
    """As when the state kept a dict of the runs read: every occurrence of a uid in one read is compared
    with what the workflow knew before that read (the sources never list a uid twice, a caller may)."""
    wf = Workflow("wf", "wf")
    state = WorkspaceState("acme")
    state.workflows_listed([wf], now=T)
    uid = str(uuid.UUID(int=5))
    was = new_run(uid, "", "finished", "failed", T, T, None)
    state.runs_read(wf, Parsed([was]), now=T)  # the baseline
    now_pending = new_run(uid, "", "pending", "x", T, None, None)
    state.runs_read(wf, Parsed([was, now_pending, now_pending]), now=T + 1)
    assert state.workflows["wf"].status_changes["pending"] == 2
    assert state.workflows["wf"].known(uid) == ("pending", "x")
    new = new_run("n", "", "running", "running", T + 2, None, None)  # first seen, twice: new twice
    state.runs_read(wf, Parsed([new, new, now_pending]), now=T + 3)
    assert state.workflows["wf"].status_changes["running"] == 2
    assert state.workflows["wf"].status_changes["pending"] == 2


def test_churn_keeps_the_store_as_large_as_what_it_remembers() -> None:
    """Runs that come and go for days: vanished runs are forgotten after a day, their table entries
    and slots with them, so the table does not grow past what one day of runs needs (a soak's RSS)."""
    wf = Workflow("wf", "wf")
    state = WorkspaceState("acme")
    state.workflows_listed([wf], now=T)
    sizes = []
    for poll in range(240):  # 10 simulated days, a poll an hour, 20 new runs an hour, 100 listed
        now = T + 3600 * poll
        listed = [
            new_run(str(uuid.UUID(int=number)), "", "finished", "finished", now, now, None)
            for number in range(20 * poll, 20 * poll + 100)
        ]
        state.runs_read(wf, Parsed(listed), now=now)
        sizes.append((len(state.store), len(state.store.table)))
    runs = state.workflows["wf"].runs
    assert len(runs) == 100
    assert runs.vanished_count == 500  # the last day's, 25 polls x 20: forgotten after more than 86400 s
    assert sizes[-1][0] == 600
    assert max(capacity for _, capacity in sizes[48:]) == sizes[48][1]  # no growth after two days


def test_the_zero_uuid_is_not_taken_for_a_uid_kept_as_a_string() -> None:
    """A slot whose uid is not a UUID has zero key bytes: the all-zero UUID is another run."""
    wf = Workflow("wf", "wf")
    state = WorkspaceState("acme")
    state.workflows_listed([wf], now=T)
    zero = "00000000-0000-0000-0000-000000000000"
    plain = new_run("r1", "", "pending", "pending", T, None, None)  # slot 0, zero key bytes
    for now, status in ((T, "running"), (T + 1, "finished"), (T + 2, "shutdown")):
        run = new_run(zero, "", status, status, now, now, None)
        state.runs_read(wf, Parsed([plain, run] if now == T else [run, plain]), now=now)
    tracked = state.workflows["wf"]
    assert tracked.known("r1") == ("pending", "pending")
    assert tracked.known(zero) == ("shutdown", "shutdown")
    assert tracked.status_changes["finished"] == 1
    assert tracked.status_changes["shutdown"] == 1
    assert len(state.store) == 2


def fingerprint(state: WorkspaceState, calls: list[str]) -> object:
    """Everything a read leaves in the state that shows, or counts later."""
    tracked = {**state.missing, **state.workflows}
    flows = []
    for uid, flow in sorted(tracked.items()):
        runs = flow.runs
        flows.append(
            (
                uid,
                list(runs.records()),
                [runs.run_at(slot) for slot in range(len(runs))],
                list(runs.position),
                runs.next_position,
                list(runs.vanished_when),
                dict(flow.status_changes),
                dict(flow.failures),
                {status: histogram.snapshot() for status, histogram in flow.durations.items()},
                list(flow.last_status_time.items()),
                replace(flow.build_snapshot(state.needs_action_limit, T), version=0),
            )
        )
    return flows, dict(state.runs_skipped), list(calls), len(state.store)


@st.composite
def listing(draw: st.DrawFn, pool: list[str], last: list[Run]) -> list[Run]:
    """A listing: any runs of the pool, or the last listing again after a few new runs, maybe shorter,
    maybe with some runs changed (what a steady poll mostly reads)."""
    if not last or draw(st.integers(0, 2)) == 0:
        return [draw(runs(uid)) for uid in draw(st.lists(st.sampled_from(pool), max_size=8))]
    fresh = [draw(runs(uid)) for uid in draw(st.lists(st.sampled_from(pool), max_size=3))]
    again = last[: draw(st.integers(0, len(last)))]
    again = [draw(runs(run.uid)) if draw(st.booleans()) else run for run in again]
    return fresh + again


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data(), st.lists(uuids, min_size=1, max_size=10, unique=True), st.integers(0, 3))
def test_the_bulk_paths_of_a_read_do_what_the_loop_does(
    data: st.DataObject, pool: list[str], other: int
) -> None:
    """Reads of UUID runs take bulk paths (a first listing, a listing read again after new runs): the
    state they leave, the counts and the pushes told are the loop's, read after read."""
    if not other:
        pool = [*pool, "run-1"]  # a uid that is not a UUID: the loop's path for its block
    flows = [Workflow(name, name) for name in BLOCKS]
    states, calls = [], []
    for bulk in (True, False):
        state = WorkspaceState("acme")
        state.bulk = bulk
        told: list[str] = []
        state.on_polled_change = told.append
        states.append(state)
        calls.append(told)
    last: dict[str, list[Run]] = {}
    now = T
    for step in range(data.draw(st.integers(3, 15))):
        now += data.draw(st.sampled_from([1.0, 100.0, 90000.0]))
        if step == 0 or data.draw(st.integers(0, 5)) == 0:  # a later list's new workflows count
            listed = data.draw(st.lists(st.sampled_from(flows), min_size=1, max_size=3, unique=True))
            for state in states:
                state.workflows_listed(listed, now=now)
            continue
        flow = data.draw(st.sampled_from(flows))
        read = data.draw(listing(pool, last.get(flow.uid, [])))
        complete = data.draw(st.integers(0, 3)) > 0
        last[flow.uid] = read
        for state in states:
            state.runs_read(flow, Parsed(list(read)), complete=complete, now=now)
        assert fingerprint(states[0], calls[0]) == fingerprint(states[1], calls[1])
