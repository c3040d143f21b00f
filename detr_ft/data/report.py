"""The printed report of `python -m detr_ft.check`: for each split its class counts, notes, warnings and every
error found by the validator (detr_ft/data/validation.py), and objects per image against the model's queries."""

from pathlib import Path

from detr_ft.data.validation import validate_split

MAX_LISTED = 10


def report(splits: dict[str, tuple[Path, Path]], num_queries: int | None = None) -> int:
    """Print a report for each split (objects per image against `num_queries` when given); return the number
    of errors (unreadable image files count: training stops on them unless data.skip_bad_images=true)."""
    total, first_ids = 0, None
    for split, (images_dir, annotations_file) in splits.items():
        result = validate_split(images_dir, annotations_file, split)
        errors = result.all_errors
        if result.category_ids and first_ids is None:
            first_ids = (split, result.category_ids)
        elif result.category_ids and result.category_ids != first_ids[1]:
            errors.append(
                f"categories {result.category_ids} differ from the {first_ids[0]} split's {first_ids[1]} "
                "(every split must share one category list)"
            )
        print(f"== {split}: {annotations_file}")
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
    return total
