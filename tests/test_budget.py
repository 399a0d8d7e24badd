"""--minutes: the epoch plan from a measured speed, and the learning rate paced by the clock."""
import json
import time
from types import SimpleNamespace

import numpy as np
import pytest

from conftest import QUICK, ROOT, read_rows, run_script, synthetic_faces, train_cnn_settings
from fer import records, training
from fer.augment import CleanTail
from fer import clock as clocks
from fer.clock import BUDGET_RESERVE_S, CAP_FACTOR, FEW_EPOCHS, NARROW_WIDTH, ClockSchedule, narrower_advice
from fer.settings import CPU_MINUTES, DEFAULTS, PRESETS


def test_train_cnn_times_the_cpu_preset_to_its_half_hour_unless_told(tmp_path, capsys):
    settings = train_cnn_settings("--train", "x", "--preset", "cpu", timed=True)
    assert (settings["epochs"], settings["minutes"]) == ("auto", CPU_MINUTES)
    settings = train_cnn_settings("--train", "x", "--preset", "cpu", "--epochs", "5", timed=True)
    assert (settings["epochs"], settings["minutes"]) == (5, None)
    settings = train_cnn_settings("--train", "x", "--preset", "gpu", timed=True)
    assert (settings["epochs"], settings["minutes"]) == (PRESETS["gpu"]["epochs"], None)  # a fixed count
    settings = train_cnn_settings("--train", "x", "--preset", "gpu", "--minutes", "9", timed=True)
    assert (settings["epochs"], settings["minutes"], settings["width"]) == ("auto", 9, PRESETS["gpu"]["width"])
    out = tmp_path / "cnn.keras"
    for flags, message in ((["--minutes", "2", "--epochs", "3"], "give --minutes or --epochs, not both"),
                           (["--minutes", "0"], "must be positive, got 0.0")):
        assert run_script("train_cnn.py", "--train", ROOT / "data/sample/train.csv.xz", *flags, "--model", out) == 2
        assert capsys.readouterr().err.strip() == f"error: --minutes: {message}"
        assert not out.exists()


def budget_data(n_train=1000, n_val=400):
    return dict(x_train=np.zeros((n_train, 48, 48, 1), "float32"), x_val=np.zeros((n_val, 48, 48, 1), "float32"))


def test_the_plan_fills_the_time_left_at_the_measured_speed(monkeypatch, tmp_path):
    monkeypatch.setattr(training, "measure_speed", lambda *a, **k: {"train": 100.0, "val": 400.0})
    paths = records.output_paths(tmp_path / "cnn.keras", tmp_path)
    reserve = BUDGET_RESERVE_S

    def plan(minutes, spent=0.0, data=None):
        cap, budget = training.epochs_for_budget(data or budget_data(), {"minutes": minutes}, paths,
                                                 started=time.perf_counter() - spent)
        assert cap == budget["cap_epochs"] >= budget["planned_epochs"]
        return budget["planned_epochs"]

    # an epoch here: 1000 / 100 + 400 / 400 = 11 s
    assert plan(10) == (600 - reserve) // 11
    assert plan(10, spent=300) == (300 - reserve) // 11  # time already spent (loading the data) counts
    assert plan(0.1) == 1
    assert plan(10, data=budget_data(2000, 800)) == (600 - reserve) // 22
    # timed from now: by default a budget counts from when fer.training loaded, long ago in a test session
    cap, budget = training.epochs_for_budget(budget_data(), {"minutes": 10}, paths, started=time.perf_counter())
    assert budget["epoch_seconds"] == 11.0 and budget["train_images_per_second"] == 100.0
    assert cap == budget["planned_epochs"] * CAP_FACTOR  # room for the machine to run faster than measured


def test_the_speed_probe_is_not_slowed_down_by_a_stall_during_one_step():
    clock = FakeClock()
    lengths = iter([5.0, 0.1, 0.1, 3.0, 0.1, 0.1, 0.1])  # a slow first (warm-up) step, a stall in the third timed

    def step():
        clock.now += next(lengths)

    assert clocks.images_per_second(step, 128, steps=6, warmup=1, clock=clock) == pytest.approx(1280)
    assert next(lengths, None) is None  # every step ran, the warm-up untimed


def test_a_probe_that_read_the_machine_at_half_its_speed_still_trains_for_the_whole_budget():
    """A stall while the plan measured: 50 training images/s read where the machine trains at 100."""
    cap, budget = clocks.plan(10, 1000, 400, {"train": 50.0, "val": 400.0}, started=time.perf_counter())
    real_epoch = 1000 / 100 + 400 / 400
    seconds = 10 * 60 - BUDGET_RESERVE_S
    assert budget["planned_epochs"] == seconds // 21
    rates, used, _ = run_clock([real_epoch], cap=cap, budget_s=seconds, epoch_s=budget["epoch_seconds"])
    assert len(rates) < cap and seconds - real_epoch < used <= seconds  # ended by the clock, not by the cap
    assert rates[-1] < 0.02


def test_a_slow_machine_is_told_that_a_narrower_network_learns_more_in_its_time():
    advice = narrower_advice(FEW_EPOCHS - 1, 1.0)
    assert f"only {FEW_EPOCHS - 1} epochs fit" in advice and f"--width {NARROW_WIDTH:g}" in advice
    assert narrower_advice(FEW_EPOCHS, 1.0) is None  # enough epochs: the preset's width stands
    assert narrower_advice(1, NARROW_WIDTH) is None  # already that narrow: nothing to advise
    assert narrower_advice(3, 0.75) is not None
    assert "only 1 epoch fits;" in narrower_advice(1, 1.0)


def test_train_cnn_gives_that_advice_where_few_epochs_fit(synthetic_files, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(training, "measure_speed", lambda *a, **k: {"train": 10.0, "val": 100.0})  # a slow machine
    for width, advised in (("0.75", True), (f"{NARROW_WIDTH:g}", False)):
        out = tmp_path / f"cnn_{width}.keras"
        assert run_script("train_cnn.py", "--train", synthetic_files["train"], "--preset", "smoke", "--width", width,
                          "--no-augment", "--minutes", "0.2", "--limit", "64", "--model", out,
                          "--figures", tmp_path) == 0
        printed = capsys.readouterr().out
        assert "about 1 epoch fits 0.2 minutes here" in printed
        cap = CAP_FACTOR * 1  # the plan's one epoch, doubled: the count Keras shows
        assert f"the epoch counter below runs to a cap of {cap}" in printed and f"Epoch 1/{cap}" in printed
        assert (f"only 1 epoch fits; on a machine this slow, --width {NARROW_WIDTH:g}" in printed) == advised


def test_a_resumed_budget_run_keeps_its_plan_without_measuring(monkeypatch, tmp_path):
    paths = records.output_paths(tmp_path / "cnn.keras", tmp_path)
    paths["resume"].mkdir(parents=True)
    saved = {"minutes": 30, "cap_epochs": 7, "planned_epochs": 5, "epoch_seconds": 11.0,
             "seconds_before_training": 12.0}
    (paths["resume"] / "budget.json").write_text(json.dumps(saved))

    def no_measuring(*args, **kwargs):
        raise AssertionError("measured although the run resumes")

    monkeypatch.setattr(training, "measure_speed", no_measuring)
    assert training.epochs_for_budget(budget_data(), {"minutes": 30}, paths) == (7, saved)
    # another budget, or --fresh, measures again
    monkeypatch.setattr(training, "measure_speed", lambda *a, **k: {"train": 100.0, "val": 400.0})
    assert training.epochs_for_budget(budget_data(), {"minutes": 20}, paths)[1] != saved
    assert training.epochs_for_budget(budget_data(), {"minutes": 30}, paths, fresh=True)[1] != saved


def test_measuring_speed_leaves_the_real_network_named_as_without_it():
    """A resumed run skips the measurement; its backup is matched to the layers by name."""
    import keras

    x, y = synthetic_faces(64)
    data = dict(x_train=x.reshape(-1, 48, 48, 1).astype("float32"), y_train=np.eye(7, dtype="float32")[y],
                x_val=x[:16].reshape(-1, 48, 48, 1).astype("float32"), mean=100.0, variance=900.0)
    settings = {**DEFAULTS, "precision": "float32", "width": 0.25, "augment_scale": 0.5,
                "batch_size": 16, "lr": 1e-3, "epochs": 1}
    keras.backend.clear_session()
    plain = [v.path for v in training.build_for(settings, data).weights]
    keras.backend.clear_session()
    rates = training.measure_speed(data, settings, steps=2, warmup=1)
    assert rates["train"] > 0 and rates["val"] > 0
    assert [v.path for v in training.build_for(settings, data).weights] == plain


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def run_clock(durations, cap, budget_s, spent_s=0.0, epoch_s=10.0, done_rows=(), first_epoch=0, lr=1.0, tail=0.0):
    """Drive a ClockSchedule through epochs of the given lengths (seconds) as fit() would, with a CleanTail of
    this share reading its progress as in fit(); returns (learning rate of each epoch run, seconds used at the
    end, each epoch's logs)."""
    clock = FakeClock()
    model = SimpleNamespace(optimizer=SimpleNamespace(learning_rate=None), stop_training=False, layers=[])
    schedule = ClockSchedule(lr, 1, cap, budget_s, spent_s, epoch_s, done_rows, clock=clock)
    callbacks = [schedule, *([CleanTail(tail, lambda epoch: schedule.progress)] if tail else [])]
    for callback in callbacks:
        callback.set_model(model)
    schedule.on_train_begin()
    rates, logs = [], []
    for epoch in range(first_epoch, cap):
        for callback in callbacks:
            callback.on_epoch_begin(epoch)
        rates.append(model.optimizer.learning_rate)
        clock.now += durations[epoch] if epoch < len(durations) else durations[-1]
        logs.append({})
        for callback in callbacks:
            callback.on_epoch_end(epoch, logs[-1])
        if model.stop_training:
            break
    return rates, clock.now - 1000.0 + spent_s, logs


def test_the_clock_schedule_anneals_by_the_deadline_and_stops_there():
    rates, used, _ = run_clock([10.0], cap=100, budget_s=100)
    assert len(rates) == 10 and used <= 100
    assert rates[0] == pytest.approx(0.55)  # warm-up: the mean of the ramp from lr/10 to lr
    assert all(a > b for a, b in zip(rates[1:], rates[2:]))
    assert rates[1] > 0.9 and rates[-1] < 0.02


def test_a_machine_that_slows_down_still_ends_on_time_with_the_rate_near_zero():
    steady, _, _ = run_clock([10.0], cap=100, budget_s=100)
    rates, used, _ = run_clock([10.0] * 4 + [20.0], cap=100, budget_s=100)
    assert used <= 100 and len(rates) < len(steady)
    assert rates[-1] < 0.1
    assert rates[5] < steady[5]  # after the slower epochs the rate comes down faster


def test_a_first_epoch_slowed_by_compiling_does_not_end_the_run():
    """Processes that share a machine compile slowly: the first epoch took 60 s against the 10 planned."""
    rates, used, _ = run_clock([60.0, 10.0], cap=100, budget_s=100, epoch_s=10.0)
    assert len(rates) == 5 and used == 100
    assert rates[-1] < 0.1
    rates, used, _ = run_clock([60.0, 60.0], cap=100, budget_s=150, epoch_s=10.0)
    assert len(rates) == 2 and used == 120  # slow from then on too: the second epoch says so


def test_a_machine_faster_than_planned_ends_at_the_cap_annealed():
    rates, used, _ = run_clock([10.0], cap=6, budget_s=1000)
    assert len(rates) == 6 and used == 60
    assert all(a > b for a, b in zip(rates[1:], rates[2:])) and rates[-1] < 0.05


def test_a_resumed_clock_schedule_gives_the_rates_of_the_uninterrupted_run():
    durations = [12.0, 10.0, 10.0, 11.0, 10.0, 10.0, 10.0, 10.0]
    whole, _, _ = run_clock(durations, cap=100, budget_s=100, spent_s=5.0)
    rows = [{"epoch_seconds": d} for d in durations[:3]]
    resumed, _, _ = run_clock(durations, cap=100, budget_s=100, spent_s=5.0 + sum(durations[:3]),
                              done_rows=rows, first_epoch=3)
    np.testing.assert_allclose(resumed, whole[3:], rtol=1e-9)


def test_a_timed_run_learns_anneals_and_records_its_budget(synthetic_files, tmp_path):
    out = tmp_path / "cnn.keras"
    assert run_script("train_cnn.py", "--train", synthetic_files["train"], *QUICK, "--no-augment",
                      "--minutes", "1.5", "--limit", "256", "--model", out, "--figures", tmp_path) == 0
    summary = json.loads((tmp_path / "cnn_summary.json").read_text())
    budget = summary["budget"]
    assert summary["settings"]["minutes"] == 1.5 and summary["settings"]["epochs"] == budget["cap_epochs"]
    assert budget["train_images_per_second"] > 0 and budget["planned_epochs"] >= 1
    rows = read_rows(tmp_path / "cnn_history.csv")
    assert 2 <= len(rows) <= budget["cap_epochs"]
    rates = [float(r["lr"]) for r in rows]
    assert rates[0] < max(rates) and rates[-1] < 0.2 * max(rates)
    assert summary["best_val_accuracy"] >= 0.8


def test_a_rate_set_at_an_epoch_start_reaches_that_epochs_steps():
    """ClockSchedule relies on it; under JAX the compiled step reads the optimizer's variables at epoch starts."""
    import keras

    x = np.random.default_rng(0).normal(size=(64, 4)).astype("float32")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(keras.optimizers.AdamW(0.01), "mse")
    weights = {}

    class ZeroAfterFirst(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            weights[epoch] = self.model.get_weights()[0].copy()
            self.model.optimizer.learning_rate = 0.01 if epoch == 0 else 0.0

    model.fit(x, x.sum(1, keepdims=True), batch_size=16, epochs=2, verbose=0, callbacks=[ZeroAfterFirst()])
    assert not np.allclose(weights[0], weights[1])
    np.testing.assert_allclose(model.get_weights()[0], weights[1], atol=1e-7)


def test_a_clean_tail_of_a_timed_run_covers_its_last_epochs_by_the_clock():
    """CleanTail reads ClockSchedule's progress, so on a machine that slows down the tail still comes last."""
    for durations in ([10.0], [10.0] * 4 + [20.0]):
        rates, _, logs = run_clock(durations, cap=100, budget_s=300, tail=0.3)
        clean = [bool(epoch["clean"]) for epoch in logs]
        first = clean.index(True)
        assert all(clean[first:]) and 0 < first < len(clean) - 1
        # it begins where the cosine has come down to the rate at 70% of the decay
        assert rates[first] <= 0.5 * (1 + np.cos(0.7 * np.pi)) + 1e-9 < rates[first - 1]
