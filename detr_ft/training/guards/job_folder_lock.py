"""A sweep job's folder is locked (run_lock.py) before anything is written into it. Hydra writes a job's
`.hydra/` and its log file before the job's first callback hook (`on_job_start`), but it resolves the job's
folder name, `hydra.sweep.subdir`, first of all: conf/config.yaml names it `${locked_job_folder:...}`, whose
resolver takes the lock as it names the folder (run_folder.RunFolderGuard releases it when the job ends). A
`hydra.sweep.subdir` of one's own loses this: the folder is then locked in `on_job_start`, after Hydra's files."""

from pathlib import Path

from omegaconf import OmegaConf

from detr_ft.training.guards import run_lock


def locked_job_folder(sweep_dir: str, subdir: str) -> str:
    """-> `subdir`, once `sweep_dir/subdir` is locked for this process (a DDP worker leaves it to rank 0)."""
    if not run_lock.is_secondary_process():
        try:
            run_lock.hold(Path(str(sweep_dir)) / str(subdir))
        except OSError as error:  # RunFolderBusy, an unwritable folder
            # A resolver's Exception would come back as Hydra's long interpolation error: SystemExit says it plainly.
            raise SystemExit(f"Error: {error}") from None
    return str(subdir)


def register() -> None:
    if not OmegaConf.has_resolver("locked_job_folder"):
        OmegaConf.register_new_resolver("locked_job_folder", locked_job_folder)
