"""A split's `categories` and `annotations`: unique integer ids, unique names, boxes that are 4 finite numbers
of positive size inside their image (those only poking out are clipped, their `area` with them), `area` and
`iscrowd` of the types COCO evaluation reads."""

import math

from detr_ft.data.checks.images import image_size, is_id, is_number

BOX = "'bbox' must be [x, y, width, height]: 4 finite numbers, width and height > 0"
CROWD = (
    "left out of training targets (DETR matches objects one to one); COCO evaluation ignores detections on "
    "them, counting them neither as hits nor as false positives"
)


def check_categories(data: dict, report) -> dict:
    """-> {id: name} of the well-formed categories."""
    categories = {}
    for index, category in enumerate(data["categories"]):
        category_id, name = (category.get("id"), category.get("name")) if isinstance(category, dict) else (None, None)
        if not is_id(category_id) or category_id in categories:
            report.errors.append(f"categories[{index}]: 'id' {category_id!r} must be an integer unique among them")
        elif not isinstance(name, str) or not name.strip():
            report.errors.append(f"category id {category_id}: 'name' {name!r} must be a non-empty text")
            categories[category_id] = repr(name)  # known, so that its annotations add no second error
        elif name in categories.values():
            other = next(i for i, n in categories.items() if n == name)
            report.errors.append(
                f"category ids {other} and {category_id} share the name {name!r} (names must be unique: merge the "
                "two, or rename one)"
            )
        else:
            categories[category_id] = name
    return categories


def category_mismatch(reference: tuple[str, dict], split: str, categories: dict) -> str | None:
    """Why `split`'s {id: name} differs from the reference (split, {id: name}), or None when they agree."""
    if categories == reference[1]:
        return None
    return (
        f"the {split} split's categories {dict(sorted(categories.items()))} differ from the {reference[0]} split's "
        f"{dict(sorted(reference[1].items()))} (every split must share one category list: the same ids, the same names)"
    )


def box_problem(bbox, size: tuple | None) -> tuple[str | None, list | None]:
    """-> (what is wrong with the box, or None; the box clipped to its image when it pokes out, or None)."""
    if not isinstance(bbox, list) or len(bbox) != 4 or not all(is_number(v) for v in bbox):
        return f"malformed 'bbox' {bbox!r:.80} ({BOX})", None
    x, y, w, h = bbox
    if not all(math.isfinite(v) for v in bbox):
        return f"'bbox' {bbox} holds a NaN or infinite value ({BOX})", None
    if w < 0 or h < 0:
        return f"'bbox' {bbox} has a negative width or height ({BOX})", None
    if w == 0 or h == 0:
        return f"zero-area 'bbox' {bbox} ({BOX})", None
    if size is None:
        return None, None
    width, height = size
    left, top, right, bottom = max(x, 0), max(y, 0), min(x + w, width), min(y + h, height)
    if right <= left or bottom <= top:
        return (
            f"'bbox' {bbox} lies entirely outside the {width}x{height} image (want x < width, y < height, "
            "x + w > 0 and y + h > 0)"
        ), None
    if (left, top, right, bottom) == (x, y, x + w, y + h):
        return None, None
    return None, [left, top, right - left, bottom - top]


def _other_keys(annotation: dict, where: str, report) -> bool:
    """`area` (filled from the box when absent) and `iscrowd`; True when the annotation is a crowd region."""
    area, crowd = annotation.get("area"), annotation.get("iscrowd", 0)
    if area is not None and not (is_number(area) and area >= 0 and math.isfinite(area)):
        report.errors.append(
            f"{where}: 'area' {area!r} must be a number >= 0 (COCO's small/medium/large split reads it)"
        )
    if crowd not in (0, 1):
        report.errors.append(f"{where}: 'iscrowd' {crowd!r} must be 0 or 1")
    return crowd == 1


def check_annotations(data: dict, images: dict, categories: dict, report) -> None:
    seen, clipped, filled, crowd = set(), [], 0, 0
    for index, annotation in enumerate(data["annotations"]):
        if not isinstance(annotation, dict):
            report.errors.append(f"annotations[{index}] is {annotation!r:.40}, not an object")
            continue
        annotation_id, image_id = annotation.get("id"), annotation.get("image_id")
        where = annotation.get("source") or f"annotation id {annotation_id} (image {image_id})"
        if not is_id(annotation_id) or annotation_id in seen:
            report.errors.append(f"{where}: 'id' {annotation_id!r} must be an integer unique among 'annotations'")
        seen.add(annotation_id if is_id(annotation_id) else None)
        category = annotation.get("category_id")
        if not is_id(category) or category not in categories:
            report.errors.append(
                f"{where}: unknown category_id {category!r} (want one of the 'categories' ids: {sorted(categories)})"
            )
        image = images.get(image_id) if is_id(image_id) else None
        if image is None:
            report.errors.append(f"{where}: 'image_id' {image_id!r} names no entry of 'images'")
        problem, inside = box_problem(annotation.get("bbox"), image_size(image) if image else None)
        is_crowd = _other_keys(annotation, where, report)
        if problem:
            report.errors.append(f"{where}: {problem}")
        elif inside is not None:
            clipped.append((where, annotation["bbox"]))
            annotation["bbox"] = inside
            annotation["area"] = min(annotation.get("area") or math.inf, inside[2] * inside[3])
        if not problem and annotation.get("area") is None:
            annotation["area"], filled = annotation["bbox"][2] * annotation["bbox"][3], filled + 1
        crowd += is_crowd
        report.counts[categories.get(category, "?") if is_id(category) else "?"] += not is_crowd
    if clipped:
        report.warnings.append(
            f"clipped {len(clipped)} box(es) that reach past their image's edge to the image, and their 'area' "
            f"(e.g. {clipped[0][0]}: {clipped[0][1]})"
        )
    if crowd:
        report.warnings.append(f"{crowd} crowd annotation(s) (iscrowd=1): {CROWD}")
    if filled:
        report.notes.append(f"{filled} annotation(s) without 'area' get their box's (COCO evaluation reads it)")
