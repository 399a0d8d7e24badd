"""Killed runs resume: rerun the same command and it continues after the last finished epoch (weights,
optimizer and schedule from models/.resume/NAME/)."""
import contextlib
import json
import os
import shutil
from pathlib import Path

try:
    import fcntl
except ImportError:  # not on Windows: runs there are not locked
    fcntl = None

import h5py
import keras

from . import backend
from .errors import InputError
from .settings import as_record, with_new_defaults


@contextlib.contextmanager
def only_run(resume_dir, model_path):
    """Held while a run trains `model_path`: a second run of the same model is refused in one line instead of
    both writing one file (a lock file beside the backup folder, released when the process ends)."""
    resume_dir.parent.mkdir(parents=True, exist_ok=True)
    with open(resume_dir.parent / f"{resume_dir.name}.lock", "a") as lock:
        if fcntl is not None:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise InputError(model_path, "another run is training this model now: wait for it to end, or "
                                             "give another --model") from None
        yield


def backed_up_epochs(resume_dir):
    """Epochs an interrupted run finished and backed up (the count AtomicBackupAndRestore resumes from); 0 if
    none. A backup that cannot be read is refused in one line that names --fresh."""
    metadata, weights = resume_dir / "training_metadata.json", resume_dir / "latest.weights.h5"
    if not metadata.exists():
        return 0
    try:
        epoch = int(json.loads(metadata.read_text())["epoch"])
        with h5py.File(weights, "r") as backup:  # every array read once, as Keras will on resuming
            backup.visititems(lambda name, item: item[()] if isinstance(item, h5py.Dataset) else None)
    except Exception as exc:  # a damaged backup: JSON and HDF5 raise many kinds
        raise InputError(resume_dir, f"the backup of an interrupted run cannot be read ({type(exc).__name__}); "
                                     "rerun with --fresh to start over") from None
    return epoch


class AtomicBackupAndRestore(keras.callbacks.BackupAndRestore):
    """Keras's resume callback, but a kill mid-save can no longer corrupt the backup.

    Keras 3.15 writes the weights file in place, so a kill during the write
    leaves an unreadable file and the rerun crashes. Here weights and epoch
    are written to temporary files first, then moved into place.
    """

    async_safe = True  # it saves at epoch ends only (save_freq "epoch"); its batch-end hook does nothing

    def __init__(self, backup_dir):
        super().__init__(backup_dir, save_freq="epoch")

    def _save_model(self):
        folder = Path(self.backup_dir)
        folder.mkdir(parents=True, exist_ok=True)
        weights, meta = folder / ".next.weights.h5", folder / ".next.json"
        self.model.save_weights(weights, overwrite=True)
        meta.write_text(json.dumps({"epoch": self._current_epoch, "batch": self._last_batch_seen}))
        # Weights first: a kill between the two moves only redoes one epoch from newer weights.
        os.replace(weights, self._weights_path)
        os.replace(meta, self._training_metadata_path)


def resume_key(settings, split, network):
    """What a backup must match to be resumed: the settings, the data, the backend, and the network's name, which
    says what no setting does (the DNN's layer widths, matched to another model's parameters)."""
    return {"settings": as_record(settings), "data": split["digest"], "backend": backend.name(), "network": network}


def resumes(resume_dir, fresh):
    """Whether this run continues an interrupted one from its backup (check_resume says if the settings allow)."""
    return not fresh and (resume_dir / "settings.json").exists() and backed_up_epochs(resume_dir) > 0


def check_resume(resume_dir, settings, split, fresh, network):
    saved = resume_dir / "settings.json"
    if fresh:
        shutil.rmtree(resume_dir, ignore_errors=True)
        return
    if not saved.exists():
        shutil.rmtree(resume_dir, ignore_errors=True)  # a backup without settings is unusable
        return
    before = json.loads(saved.read_text())
    now = json.loads(json.dumps(resume_key(settings, split, network)))
    before["settings"] = with_new_defaults(before["settings"], now["settings"])
    before.setdefault("network", network)  # a backup older than the field: its settings decide
    if before != now:
        changed = [k for k in sorted(set(before["settings"]) | set(now["settings"]))
                   if before["settings"].get(k) != now["settings"].get(k)]
        if before["data"] != now["data"]:
            changed.append("training data")
        if before["backend"] != now["backend"]:
            changed.append("backend")
        if before["network"] != now["network"] and "arch" not in changed:  # a CNN's name is its arch, named
            changed.append(f"network: {before['network']}, now {now['network']}")
        raise InputError(resume_dir, f"an interrupted run with other settings ({', '.join(changed)}) is here; "
                                     "rerun with --fresh to discard it, or with its settings to resume it")
