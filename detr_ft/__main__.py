"""`python -m detr_ft [overrides]`: train or fine-tune (see detr_ft/train.py)."""

from detr_ft.train import main

if __name__ == "__main__":
    main()
