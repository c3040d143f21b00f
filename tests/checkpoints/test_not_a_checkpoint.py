"""A file that is no checkpoint at all (random bytes, text, empty, a zip torch did not write) is reported as
"PATH is not a checkpoint (...)"; only a real pickle that holds code gets the "needs pickled Python code"
refusal, and neither ever advises `weights_only=False`."""

import zipfile

import pytest
import torch

from detr_ft.checkpoints.safe_read import CheckpointError, read_weights_file


def _random(path):
    path.write_bytes(bytes(range(7, 256)) * 16)


def _text(path):
    path.write_text("epochs: 20\nlearning_rate: 1e-4\n")


def _empty(path):
    path.write_bytes(b"")


def _other_zip(path):
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("notes.txt", "hello")


def _truncated(path):
    torch.save({"w": torch.ones(100)}, path)
    path.write_bytes(path.read_bytes()[:200])


@pytest.mark.parametrize(
    ("write", "reason"),
    [
        (_random, "neither torch's zip format nor a pickle"),
        (_text, "neither torch's zip format nor a pickle; it starts with b'epoc'"),
        (_empty, "the file is empty"),
        (_other_zip, "a zip file that torch.save did not write"),
        (_truncated, "a zip file that is truncated or damaged"),
    ],
)
def test_a_file_that_is_no_checkpoint_is_named_so(tmp_path, write, reason):
    path = tmp_path / "model.ckpt"
    write(path)
    with pytest.raises(CheckpointError) as raised:
        read_weights_file(path)
    message = str(raised.value)
    assert message.startswith(f"{path} is not a checkpoint (") and reason in message
    assert "pickled Python code" not in message and "weights_only" not in message


class Payload:  # a class the loader would have to import and run to unpickle
    pass


def test_only_a_pickle_that_holds_code_gets_the_code_refusal(tmp_path):
    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "payload": Payload()}, path)
    with pytest.raises(CheckpointError) as raised:
        read_weights_file(path)
    message = str(raised.value)
    assert "needs pickled Python code" in message and "Payload" in message
    assert "weights_only" not in message  # torch's own advice to turn the safety off is not passed on
