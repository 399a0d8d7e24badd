"""Runs timed to the clock (--minutes, the cpu preset's half hour): how many epochs fit, and a learning rate
paced by the time used rather than by the epoch count."""
import json
import time

import keras
import numpy as np

BUDGET_RESERVE_S = 20  # of a timed run: after training, the figure and a test-set prediction
PROCESS_START = time.perf_counter()  # the package loads first thing; a budget counts from here
# A timed run planning fewer epochs than this learns more at half the width, which does a quarter of the
# convolutions' work a face and so sees every face several times as often (bench/results/README.md).
FEW_EPOCHS = 15
NARROW_WIDTH = 0.5
# The epoch cap, as a multiple of the plan. The probe behind the plan lasts seconds, and a machine that stalls
# for those seconds (another process ending, a busy neighbour) can read it at well under its real speed; with
# this much room the clock, not the cap, still ends the run.
CAP_FACTOR = 2


def plan(minutes, n_train, n_val, rates, started, validated=1.0):
    """(cap, budget) of a run timed to `minutes`: as many epochs as fit the time left, counted from `started`,
    at the measured training and validation `rates` (images/s), with the `validated` share of the epochs
    validated (--validate-from); the cap leaves room for the machine to run faster than it measured."""
    epoch = n_train / rates["train"] + validated * n_val / rates["val"]
    elapsed = time.perf_counter() - started
    planned = max(1, int((minutes * 60 - elapsed - BUDGET_RESERVE_S) // epoch))
    cap = CAP_FACTOR * planned
    return cap, {"minutes": minutes, "train_images_per_second": round(rates["train"], 1),
                 "val_images_per_second": round(rates["val"], 1), "epoch_seconds": round(epoch, 1),
                 "planned_epochs": planned, "cap_epochs": cap}


def images_per_second(step, images, steps, warmup, clock=time.perf_counter):
    """Images/s of `step` (one batch of `images`), timed one step at a time after `warmup` untimed steps: the
    median step, so that a stall during one or two of them does not slow the whole plan down."""
    for _ in range(warmup):
        step()
    times = []
    for _ in range(steps):
        t0 = clock()
        step()
        times.append(clock() - t0)
    return images / max(1e-9, float(np.median(times)))


def epochs_fit(epochs):
    """The words for a plan's count: "1 epoch fits", "7 epochs fit"."""
    return f"{epochs} epoch fits" if epochs == 1 else f"{epochs} epochs fit"


def narrower_advice(planned_epochs, width):
    """A note for a timed run on a slow machine, where so few epochs fit that a narrower network would do better;
    None where they do not, or the network is already that narrow."""
    if planned_epochs >= FEW_EPOCHS or width <= NARROW_WIDTH:
        return None
    return (f"note: only {epochs_fit(planned_epochs)}; on a machine this slow, --width {NARROW_WIDTH:g} trains "
            "several times as many epochs in the same minutes and learns more (bench/results/README.md: "
            "\"The half hour on a slow CPU\")")


def saved_plan(path, minutes):
    """(cap, budget) that an interrupted run of the same length saved at `path`, else None."""
    if not path.exists():
        return None
    budget = json.loads(path.read_text())
    return (budget["cap_epochs"], budget) if budget.get("minutes") == minutes else None


class ClockSchedule(keras.callbacks.Callback):
    """Warm-up, then cosine decay paced by the clock: each epoch's learning rate is the cosine at the share of
    the time budget its middle will have used (or of the epoch cap, if that is further on), and training stops
    when the next epoch would not end in time. So a machine that slows down mid-run still ends on time with the
    learning rate near zero. One rate per epoch: under JAX the rate reaches the compiled step at epoch starts.

    budget_s: seconds for training, counted from `spent_s` already used (loading, earlier sessions' epochs);
    epoch_s: the expected length of an epoch, until one has been timed.
    """

    def __init__(self, lr, warmup_epochs, cap_epochs, budget_s, spent_s, epoch_s, done_rows=(),
                 clock=time.perf_counter):
        super().__init__()
        self.lr, self.warmup, self.cap, self.budget = lr, warmup_epochs, cap_epochs, budget_s
        self.spent, self.epoch_s, self.clock = spent_s, epoch_s, clock
        self.between = 0.0  # checkpoints and backup after an epoch, before the next begins
        self.ended = None
        rows = list(done_rows)
        self.warm_end = (spent_s - sum(r["epoch_seconds"] for r in rows[warmup_epochs:])
                         if len(rows) >= warmup_epochs else None)
        if rows:
            self.epoch_s = rows[-1]["epoch_seconds"]

    def on_train_begin(self, logs=None):
        self.t0 = self.clock() - self.spent

    def progress_at(self, epoch, elapsed):
        """The share of the decay done at this epoch's middle: of the time budget, or of the epoch cap if that
        is further on (0 during the warm-up)."""
        if epoch < self.warmup:
            return 0.0
        warm_end = elapsed if self.warm_end is None else self.warm_end
        by_time = (elapsed + self.epoch_s / 2 - warm_end) / max(1e-9, self.budget - warm_end)
        by_epochs = (epoch + 0.5 - self.warmup) / max(1, self.cap - self.warmup)
        return min(1.0, max(by_time, by_epochs, 0.0))

    def rate_for(self, epoch, elapsed):
        if epoch < self.warmup:  # the mean of a linear ramp from lr/10 to lr across the warm-up
            return self.lr * (0.1 + 0.9 * (epoch + 0.5) / self.warmup)
        return self.lr * 0.5 * (1 + np.cos(np.pi * self.progress_at(epoch, elapsed)))

    def on_epoch_begin(self, epoch, logs=None):
        self.started = self.clock()
        if self.ended is not None:
            self.between = self.started - self.ended
        elapsed = self.started - self.t0
        if epoch == self.warmup and self.warm_end is None:
            self.warm_end = elapsed
        self.progress = self.progress_at(epoch, elapsed)  # CleanTail reads it after this callback
        self.model.optimizer.learning_rate = float(self.rate_for(epoch, elapsed))

    def on_epoch_end(self, epoch, logs=None):
        first = self.ended is None  # this process's first epoch
        self.ended = self.clock()
        took = self.ended - self.started + self.between
        # The next epoch, as this one went; but a process's first epoch also compiles the step, which can take
        # longer than many epochs where processes share a machine, so there the length measured before it (the
        # plan's, or the last of an earlier session) decides whether one more fits, if shorter.
        forecast = min(took, self.epoch_s) if first else took
        self.epoch_s = took
        if self.ended - self.t0 + forecast > self.budget:
            self.model.stop_training = True
