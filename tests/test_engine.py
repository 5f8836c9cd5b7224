"""The engine every network trains and predicts through: a run interrupted after any epoch resumes to exactly the
state of an uninterrupted one (weights, metric history, what its hook keeps, scheduler, random streams), a
checkpoint of another layout is not resumed, and predictions keep the items' order in any batch size."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import torch

from cxrbench import engine, training

RUNTIME = {"device": "cpu", "threads": 1, "amp": False, "channels_last": False, "compile": False}
DEVICE = torch.device("cpu")
EPOCHS = 3


@pytest.fixture(autouse=True)
def in_tmp_path(tmp_path, monkeypatch) -> Iterator[None]:
    """Checkpoints go to ./checkpoints; torch's global settings are restored after (setup_torch changes them)."""
    monkeypatch.chdir(tmp_path)
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    yield
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)


def network() -> torch.nn.Module:
    """Dropout draws from torch's global stream, so a resume must restore it too."""
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 8), torch.nn.ReLU(), torch.nn.Dropout(0.3),
                               torch.nn.Linear(8, 1))


def images() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=(20, 4, 4), dtype=np.uint8)
    return pixels, (pixels.mean(axis=(1, 2)) > 127).astype(np.float32)[:, None]


def train(checkpoint_name: str = "run") -> tuple[torch.nn.Module, engine.Progress]:
    """A small run with every part of the engine in use: shuffled batches, flips from a torch generator, a
    validation hook that steps a plateau scheduler and keeps the best epoch."""
    training.setup_torch(RUNTIME, 0)
    pixels, labels = images()
    model = network()
    optimiser = torch.optim.Adam(model.parameters(), lr=0.05)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimiser, patience=1, threshold=0.5)  # cuts at epoch 3

    def batches(rng: np.random.Generator, flips: torch.Generator) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for rows in training.shuffled_batches(np.arange(16), 5, rng):
            x = training.random_hflip(training.to_input(pixels[rows], 255.0, 0.5, 0.25, DEVICE), flips)
            yield x, torch.from_numpy(labels[rows])

    def end_of_epoch(end: engine.EpochEnd) -> dict[str, float]:
        val = engine.predict(model, pixels, np.arange(16, 20), 255.0, (0.5, 0.25), RUNTIME, DEVICE, 3)
        val_loss = float(torch.nn.functional.binary_cross_entropy_with_logits(val, torch.from_numpy(labels[16:])))
        scheduler.step(val_loss)
        if val_loss < end.progress.kept["best"]["val_loss"]:
            end.progress.kept["best"] = {"val_loss": val_loss, "epoch": end.epoch}
        return {"val/loss": val_loss, "lr": optimiser.param_groups[0]["lr"]}

    checkpoint = training.EpochCheckpoint(checkpoint_name, "fingerprint")
    progress = engine.fit(model, optimiser, batches, torch.nn.functional.binary_cross_entropy_with_logits,
                          epochs=EPOCHS, checkpoint=checkpoint, rng=np.random.default_rng(1),
                          generator=torch.Generator().manual_seed(2), scheduler=scheduler, end_of_epoch=end_of_epoch,
                          kept={"best": {"val_loss": float("inf")}}, runtime=RUNTIME, device=DEVICE, desc="test")
    return model, progress


@pytest.mark.parametrize("killed_after", range(1, EPOCHS))
def test_interrupted_run_resumes_to_the_same_state(monkeypatch, killed_after):
    model, progress = train("uninterrupted")
    assert [set(epoch) for epoch in progress.history] == [{"train/loss", "val/loss", "lr"}] * EPOCHS
    assert progress.metric("train/loss") == [epoch["train/loss"] for epoch in progress.history]

    real_save, saves = training.save_checkpoint, []

    def save_then_die(path, payload):
        real_save(path, payload)
        saves.append(path)
        if len(saves) == killed_after:
            raise KeyboardInterrupt

    monkeypatch.setattr(training, "save_checkpoint", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        train()
    monkeypatch.setattr(training, "save_checkpoint", real_save)
    resumed_model, resumed = train()
    assert resumed.epoch == EPOCHS and resumed.history == progress.history and resumed.kept == progress.kept
    state, resumed_state = model.state_dict(), resumed_model.state_dict()
    assert all(torch.equal(state[k], resumed_state[k]) for k in state)


def test_checkpoint_of_another_layout_is_not_resumed(caplog):
    model, progress = train()
    path = training.CHECKPOINTS / "run.pt"
    payload = torch.load(path, weights_only=False)
    torch.save({**payload, "layout": training.EpochCheckpoint.LAYOUT - 1}, path)
    with caplog.at_level("INFO"):
        again_model, again = train()
    assert "written by an earlier version of the training loop" in caplog.text
    assert again.history == progress.history  # trained from the first epoch, not resumed after the last
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again_model.state_dict().values()))


def test_predictions_keep_item_order_in_any_batch_size():
    torch.manual_seed(0)
    model, (pixels, _) = network(), images()
    items = np.array([7, 0, 19, 3, 3, 12])
    one = engine.predict(model, pixels, items, 255.0, (0.5, 0.25), RUNTIME, DEVICE, batch_size=1)
    batches = list(engine.predict_batches(model, pixels, items, 255.0, (0.5, 0.25), RUNTIME, DEVICE, batch_size=4))
    assert [b.shape for b in batches] == [(4, 1), (2, 1)] and not model.training
    torch.testing.assert_close(torch.cat(batches), one)
    with torch.no_grad():
        direct = model(training.to_input(pixels[items], 255.0, 0.5, 0.25, DEVICE))
    torch.testing.assert_close(one, direct)
    doubled = engine.predict(model, pixels, items, 255.0, (0.5, 0.25), RUNTIME, DEVICE, batch_size=4,
                             forward=lambda x, positions: model(x) * 2 + torch.from_numpy(items[positions])[:, None])
    torch.testing.assert_close(doubled, direct * 2 + torch.from_numpy(items).float()[:, None])
