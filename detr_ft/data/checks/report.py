"""The printed report of `python -m detr_ft.check`: for each split its class counts, notes, warnings and every
error the validator finds (detr_ft/data/checks/split.py), and objects per image against the model's queries."""

from detr_ft.data.checks.annotations import category_mismatch
from detr_ft.data.checks.split import SplitReport, validate_split

MAX_LISTED = 10


def report(splits: dict, num_queries: int | None = None, decode: bool = False) -> tuple[int, dict[str, SplitReport]]:
    """Print a report for each split ({name: detr_ft.data.formats.Split}), objects per image against
    `num_queries` when given; `decode`: every image decoded, not only its header read. -> (the number of
    errors, unreadable image files included; the reports, whose `data` is each split's COCO form)."""
    total, reports, reference = 0, {}, None
    for split, source in splits.items():
        result = reports[split] = validate_split(source.images, source.source, split, source.read, decode)
        errors = result.all_errors
        if result.categories and reference is None:
            reference = (split, result.categories)
        elif result.categories and (mismatch := category_mismatch(reference, split, result.categories)):
            errors.append(mismatch)
        print(f"== {split}: {source.source}")
        print("   classes: " + (", ".join(f"{name}={n}" for name, n in sorted(result.counts.items())) or "none"))
        for note in result.notes:
            print(f"   note: {note}")
        if num_queries is not None and result.objects.per_image:
            print(f"   {result.objects.describe(num_queries)}")
            if warning := result.objects.warning(num_queries):
                print(f"   WARNING: {warning}")
        for warning in result.warnings:
            print(f"   WARNING: {warning}")
        for error in errors[:MAX_LISTED]:
            print(f"   ERROR: {error}")
        if len(errors) > MAX_LISTED:
            print(f"   ... and {len(errors) - MAX_LISTED} more errors")
        if result.bad_files:
            print("   (training stops on unreadable image files unless data.skip_bad_images=true, which skips them)")
        print(f"   {'OK' if not errors else f'{len(errors)} error(s)'}")
        total += len(errors)
    return total, reports
